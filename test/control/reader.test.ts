// The topology reader: our columnar format, an unmodified BOSH DNS records.json, rows
// that are skipped with a warning, and files rejected whole (docs/topology-file.md).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseTopology, type ReadResult } from '../../src/control/reader.ts';
import type { Topology } from '../../src/image/instance.ts';
import { topologyJson } from '../helpers/topology.ts';

const BOSH_RECORDS_JSON = readFileSync(new URL('./fixtures/bosh-records.json', import.meta.url), 'utf8');

function ok(result: ReadResult): { topology: Topology; warnings: string[] } {
  if (!result.ok) throw new Error(`expected the file to be read, got: ${result.error}`);
  return result;
}

function rejected(result: ReadResult): string {
  if (result.ok) throw new Error('expected the file to be rejected');
  return result.error;
}

describe('our columnar format', () => {
  it('reads every column into an instance', () => {
    const { topology, warnings } = ok(parseTopology(topologyJson([
      {
        id: 'Web-0', ip: '10.0.0.1', index: 0, numId: 7, groupIds: [1, 2], az: 'z2', azId: 2, networkId: 3,
        agentId: 'Agent-1', health: 'running', ports: { HTTP: 8080 }, domain: 'BOSH.',
      },
    ], { generated_at: '2026-01-01T00:00:00Z', source: 'db' }, 42)));
    expect(warnings).toEqual([]);
    expect(topology.version).toBe(42);
    expect(topology.generatedAt).toBe('2026-01-01T00:00:00Z');
    expect(topology.source).toBe('db');
    expect(topology.ptrRecords).toBeNull();
    expect(topology.instances).toEqual([{
      id: 'web-0', numId: 7, group: 'web', groupIds: [1, 2], network: 'default', networkId: 3, deployment: 'cf',
      az: 'z2', azId: 2, index: 0, ip: '10.0.0.1', family: 4, domain: 'bosh', agentId: 'agent-1', cellId: null,
      health: 'running', ports: { http: 8080 },
    }]);
  });

  it('stores an IPv6 address fully expanded, so PTR lookups find it', () => {
    const { topology } = ok(parseTopology(topologyJson([{ id: 'v6', ip: 'FD00::1:10' }])));
    expect(topology.instances[0].ip).toBe('fd00:0000:0000:0000:0000:0000:0001:0010');
    expect(topology.instances[0].family).toBe(6);
  });

  it('accepts "group" and "index" as synonyms of BOSH\'s column names', () => {
    const text = JSON.stringify({
      record_keys: ['id', 'group', 'network', 'deployment', 'ip', 'domain', 'index'],
      record_infos: [['a', 'web', 'default', 'cf', '10.0.0.1', 'bosh.', 3]],
    });
    const { topology } = ok(parseTopology(text));
    expect(topology.instances[0].group).toBe('web');
    expect(topology.instances[0].index).toBe(3);
  });

  it('reads aliases given as strings', () => {
    const { topology } = ok(parseTopology(topologyJson([{ id: 'a', ip: '10.0.0.1' }], {
      aliases: { 'Web.Service.Internal.': ['q-s0.web.default.cf.bosh.'] },
    })));
    expect([...topology.aliases]).toEqual([['web.service.internal', ['q-s0.web.default.cf.bosh']]]);
  });
});

describe('an unmodified BOSH records.json', () => {
  const { topology, warnings } = ok(parseTopology(BOSH_RECORDS_JSON));

  it('reads every row, with string ids and without health data', () => {
    expect(warnings).toEqual([]);
    expect(topology.instances).toHaveLength(4);
    const first = topology.instances[0];
    expect(first).toMatchObject({
      id: 'a9a5d7c4-5b5c-4d8a-9c4f-2a1f1b2c3d01', numId: 1, group: 'api', groupIds: [3], az: 'z1', azId: 1,
      network: 'default', networkId: 1, deployment: 'cf', ip: '10.10.0.11', domain: 'bosh',
      agentId: 'agent-api-0', index: 0, health: null, ports: {},
    });
    expect(topology.instances.every((i) => i.health === null)).toBe(true);
  });

  it('reads an instance without an AZ', () => {
    expect(topology.instances[3]).toMatchObject({ az: null, azId: null, group: 'worker' });
  });

  it('keeps the records list of [ip, name] pairs for PTR', () => {
    expect(topology.ptrRecords).toContainEqual(['10.10.0.11', 'a9a5d7c4-5b5c-4d8a-9c4f-2a1f1b2c3d01.api.default.cf.bosh']);
    expect(topology.ptrRecords).toContainEqual(['10.10.0.11', 'api-legacy.cf.internal']);
  });

  it('turns BOSH alias objects into short-form names', () => {
    expect(topology.aliases.get('api.service.cf.internal')).toEqual(['q-s0.q-g3.bosh']);
    expect(topology.aliases.get('_.api.service.cf.internal')).toEqual(['_.q-g3.bosh']);
    expect(topology.aliases.get('healthy-api.service.cf.internal')).toEqual(['q-s3.q-g3.bosh']);
  });
});

describe('rows that are skipped with a warning naming the row', () => {
  const keys = ['id', 'instance_group', 'network', 'deployment', 'ip', 'domain', 'instance_index', 'ports', 'health', 'group_ids'];
  const good = ['good', 'web', 'default', 'cf', '10.0.0.1', 'bosh.', 0, null, null, ['1']];
  const read = (...rows: unknown[]) => ok(parseTopology(JSON.stringify({ record_keys: keys, record_infos: [good, ...rows] })));

  it.each([
    ['a short row', ['x', 'web'], 'record_infos[1]: expected 10 columns, got 2; skipped'],
    ['a long row', [...good, 'extra'], 'record_infos[1]: expected 10 columns, got 11; skipped'],
    ['a row that is not a list', { id: 'x' }, 'record_infos[1]: expected 10 columns, got object; skipped'],
    ['a bad IP', ['x', 'web', 'default', 'cf', '10.0.0.300', 'bosh.', 0, null, null, []], 'record_infos[1]: ip "10.0.0.300" is not an IP address; skipped'],
    ['a numeric id', [5, 'web', 'default', 'cf', '10.0.0.2', 'bosh.', 0, null, null, []], 'record_infos[1]: id must be a string; skipped'],
    ['a missing group', ['x', '', 'default', 'cf', '10.0.0.2', 'bosh.', 0, null, null, []], 'record_infos[1]: instance_group is missing; skipped'],
    ['a label with a dot', ['x', 'we.b', 'default', 'cf', '10.0.0.2', 'bosh.', 0, null, null, []], 'record_infos[1]: instance_group "we.b" is not a DNS label: it contains a dot; skipped'],
    ['an id of 70 bytes', ['i'.repeat(70), 'web', 'default', 'cf', '10.0.0.2', 'bosh.', 0, null, null, []], `record_infos[1]: id "${'i'.repeat(70)}" is not a DNS label: it has a label longer than 63 bytes (70); skipped`],
    ['a network wider than a byte per character', ['x', 'web', 'd\u20ac', 'cf', '10.0.0.2', 'bosh.', 0, null, null, []], 'record_infos[1]: network "d\u20ac" is not a DNS label: it has a character that is not one byte; skipped'],
    ['a domain with an empty label', ['x', 'web', 'default', 'cf', '10.0.0.2', 'a..bosh.', 0, null, null, []], 'record_infos[1]: domain "a..bosh." is not a DNS name: it has an empty label; skipped'],
    ['a domain too long for its SOA', ['x', 'web', 'default', 'cf', '10.0.0.2', `${'d'.repeat(60)}.${'d'.repeat(60)}.${'d'.repeat(60)}.${'d'.repeat(60)}`, 0, null, null, []], 'record_infos[1]: domain "dddd'],
    [
      'labels that make a name over 253 bytes together',
      ['i'.repeat(63), 'g'.repeat(63), 'n'.repeat(63), 'd'.repeat(60), '10.0.0.2', 'bosh.', 0, null, null, []],
      'record_infos[1]: id, instance_group, network, deployment and domain make the name "iiii',
    ],
    [
      'an index that makes the index name too long',
      ['i', 'g'.repeat(63), 'n'.repeat(63), 'd'.repeat(63), '10.0.0.2', `${'o'.repeat(50)}.bosh`, 12345678901, null, null, []],
      'record_infos[1]: instance_index, instance_group, network, deployment and domain make the name "12345678901.ggg',
    ],
    ['a negative index', ['x', 'web', 'default', 'cf', '10.0.0.2', 'bosh.', -1, null, null, []], 'record_infos[1]: instance_index must be a non-negative integer; skipped'],
    ['a port out of range', ['x', 'web', 'default', 'cf', '10.0.0.2', 'bosh.', 0, { http: 70000 }, null, []], 'record_infos[1]: ports.http must be 1-65535; skipped'],
    ['an unknown health', ['x', 'web', 'default', 'cf', '10.0.0.2', 'bosh.', 0, null, 'sick', []], 'record_infos[1]: health must be one of running, failing, unchecked; skipped'],
    ['a bad group id', ['x', 'web', 'default', 'cf', '10.0.0.2', 'bosh.', 0, null, null, ['one']], 'record_infos[1]: group_ids[0] must be a non-negative integer; skipped'],
    ['a missing domain', ['x', 'web', 'default', 'cf', '10.0.0.2', null, 0, null, null, []], 'record_infos[1]: domain is missing; skipped'],
  ])('%s', (_what, row, warning) => {
    const { topology, warnings } = read(row);
    expect(warnings).toHaveLength(1);
    expect(warnings[0].startsWith(warning)).toBe(true);
    expect(warnings[0]).toMatch(/; skipped$/);
    expect(topology.instances.map((i) => i.id)).toEqual(['good']);
  });

  it('skips a records entry that is not an [ip, name] pair and keeps the rest', () => {
    const text = JSON.stringify({
      record_keys: keys, record_infos: [good], records: [['10.0.0.1', 'good.web.default.cf.bosh.'], ['nope', 'x'], 'junk'],
    });
    const { topology, warnings } = ok(parseTopology(text));
    expect(topology.ptrRecords).toEqual([['10.0.0.1', 'good.web.default.cf.bosh']]);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain('records[1]: ["nope","x"] is not an [ip, name] pair');
  });

  it('skips records names the wire cannot carry (a PTR for them once killed the daemon)', () => {
    const text = JSON.stringify({
      record_keys: keys, record_infos: [good],
      records: [['10.0.0.1', 'a..b.default.cf.bosh.'], ['10.0.0.2', `${'x'.repeat(70)}.default.cf.bosh.`], ['10.0.0.3', 'fine.cf.internal.']],
    });
    const { topology, warnings } = ok(parseTopology(text));
    expect(topology.ptrRecords).toEqual([['10.0.0.3', 'fine.cf.internal']]);
    expect(warnings).toEqual([
      'records[0]: name "a..b.default.cf.bosh." is not a DNS name: it has an empty label; skipped',
      `records[1]: name "${'x'.repeat(70)}.default.cf.bosh." is not a DNS name: it has a label longer than 63 bytes (70); skipped`,
    ]);
  });

  it('skips aliases and alias targets that are not DNS names, keeping the good ones', () => {
    const zone = Array.from({ length: 4 }, () => 'z'.repeat(60)).join('.');
    const text = JSON.stringify({
      record_keys: keys, record_infos: [good],
      aliases: {
        'bad..alias.internal': ['good.web.default.cf.bosh'],
        [`a.${zone}`]: ['good.web.default.cf.bosh'],
        'ok.internal': ['good.web.default.cf.bosh', `${'t'.repeat(64)}.bosh`],
      },
    });
    const { topology, warnings } = ok(parseTopology(text));
    expect([...topology.aliases]).toEqual([['ok.internal', ['good.web.default.cf.bosh']]]);
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toBe('alias "bad..alias.internal" is not a DNS name: it has an empty label; skipped');
    expect(warnings[1]).toContain('leaves no room for its SOA');
    expect(warnings[2]).toBe(`alias ok.internal: target "${'t'.repeat(64)}.bosh" is not a DNS name: it has a label longer than 63 bytes (64); skipped`);
  });

  it('skips an alias whose targets are not a list', () => {
    const text = JSON.stringify({ record_keys: keys, record_infos: [good], aliases: { 'a.internal': 'good.web.default.cf.bosh' } });
    const { topology, warnings } = ok(parseTopology(text));
    expect(topology.aliases.size).toBe(0);
    expect(warnings).toEqual(['alias a.internal: targets must be a list; skipped']);
  });
});

describe('files rejected whole', () => {
  const valid = topologyJson([{ id: 'a', ip: '10.0.0.1' }]);

  it.each([
    ['not JSON', '{"version": 1, "record_keys": [', 'not valid JSON'],
    ['truncated', valid.slice(0, Math.floor(valid.length / 2)), 'not valid JSON'],
    ['empty', '', 'not valid JSON'],
    ['a list at the top', '[]', 'top level must be a JSON object'],
    ['null', 'null', 'top level must be a JSON object'],
    ['no record_keys', '{"record_infos": []}', 'record_keys must be a list of column names'],
    ['record_keys not strings', '{"record_keys": [1], "record_infos": []}', 'record_keys must be a list of column names'],
    ['no record_infos', '{"record_keys": ["id"]}', 'record_infos must be a list of rows'],
    ['a required column missing', '{"record_keys": ["id", "instance_group", "network", "deployment", "domain"], "record_infos": []}', 'lacks required column(s): ip'],
    // Found by the fault suite: 7.32 was accepted and served as version 7.
    ['a fractional version', valid.replace('"version":1', '"version":7.32'), 'version must be a non-negative integer, got 7.32'],
    ['a negative version', valid.replace('"version":1', '"version":-3'), 'version must be a non-negative integer, got -3'],
    ['a version that is a string', valid.replace('"version":1', '"version":"5"'), 'version must be a non-negative integer, got "5"'],
  ])('%s', (_what, text, error) => {
    expect(rejected(parseTopology(text))).toContain(error);
  });

  it('accepts extra columns it does not know', () => {
    const text = JSON.stringify({
      record_keys: ['id', 'instance_group', 'network', 'deployment', 'ip', 'domain', 'routes', 'something_new'],
      record_infos: [['a', 'web', 'default', 'cf', '10.0.0.1', 'bosh.', ['x.example.com'], { any: 'thing' }]],
    });
    expect(ok(parseTopology(text)).topology.instances).toHaveLength(1);
  });
});
