// The store over real files: loads topology and alias files, keeps the last good
// topology when a reload fails, and logs, counts and reports the failure.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from '../../src/admin/metrics.ts';
import { parseCriteria } from '../../src/topology/criteria.ts';
import { TopologyStore } from '../../src/topology/store.ts';
import { tempDir, waitFor } from '../helpers/daemon.ts';
import { topologyJson } from '../helpers/topology.ts';

interface Harness {
  store: TopologyStore;
  metrics: Registry;
  logs: Array<{ level: number; msg: string }>;
  file: string;
  aliasesDir: string;
}

const stores: TopologyStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.stop()));
});

async function harness(topology: string | null, aliasFiles: Record<string, string> | null = {}): Promise<Harness> {
  const dir = tempDir();
  const file = join(dir, 'topology.json');
  const aliasesDir = join(dir, 'aliases.d');
  if (aliasFiles) mkdirSync(aliasesDir);
  if (topology !== null) writeFileSync(file, topology);
  for (const [name, text] of Object.entries(aliasFiles ?? {})) writeFileSync(join(aliasesDir, name), text);
  const logs: Harness['logs'] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
      done();
    },
  });
  const metrics = new Registry();
  const store = new TopologyStore({ file, aliasesDir, domains: [], logger: pino({ level: 'debug' }, sink), metrics });
  stores.push(store);
  await store.start();
  return { store, metrics, logs, file, aliasesDir };
}

const ids = (h: Harness, name: string) =>
  h.store.current!.select(parseCriteria(name.split('.'), 'bosh')).map((i) => i.id).sort();

describe('TopologyStore', () => {
  it('loads the file and reports it', async () => {
    const h = await harness(topologyJson([{ id: 'a', ip: '10.0.0.1' }], {}, 3));
    expect(h.store.status()).toMatchObject({ loaded: true, version: 3, records: 1, lastError: null });
    expect(await h.metrics.value('presence_dns_topology_records')).toBe(1);
    expect(ids(h, '*.web.default.cf')).toEqual(['a']);
  });

  it('is not loaded, with the reason, while the file is missing', async () => {
    const h = await harness(null);
    expect(h.store.current).toBeNull();
    expect(h.store.status().loaded).toBe(false);
    expect(h.store.status().lastError).toMatch(/cannot read topology file .*topology\.json: ENOENT/);
  });

  it('logs a skipped row naming the row', async () => {
    const text = JSON.stringify({
      record_keys: ['id', 'instance_group', 'network', 'deployment', 'ip', 'domain'],
      record_infos: [['a', 'web', 'default', 'cf', '10.0.0.1', 'bosh.'], ['b', 'web', 'default', 'cf', 'not-an-ip', 'bosh.']],
    });
    const h = await harness(text);
    expect(h.store.status().records).toBe(1);
    expect(h.logs.some((l) => l.level === 40 && l.msg.includes('record_infos[1]: ip "not-an-ip" is not an IP address'))).toBe(true);
  });

  it.each([
    ['corrupt', '{"version": 2, "record_keys": [}', 'not valid JSON'],
    ['truncated', topologyJson([{ id: 'new', ip: '10.0.0.9' }], {}, 2).slice(0, 40), 'not valid JSON'],
    ['wrong shape', '{"version": 2}', 'record_keys must be a list'],
  ])('keeps the last good topology when the file turns %s', async (_what, bad, reason) => {
    const h = await harness(topologyJson([{ id: 'a', ip: '10.0.0.1' }], {}, 1));
    const before = h.store.current;
    writeFileSync(h.file, bad);
    expect(h.store.reloadTopology()).toBe(false);
    expect(h.store.current).toBe(before);
    expect(h.store.status()).toMatchObject({ loaded: true, version: 1, records: 1 });
    expect(h.store.status().lastError).toContain(reason);
    expect(await h.metrics.value('presence_dns_topology_reload_failures_total')).toBe(1);
    expect(h.logs.some((l) => l.level === 50 && l.msg.includes('keeping the last good topology'))).toBe(true);

    writeFileSync(h.file, topologyJson([{ id: 'b', ip: '10.0.0.2' }], {}, 2));
    expect(h.store.reloadTopology()).toBe(true);
    expect(h.store.status()).toMatchObject({ version: 2, lastError: null });
    expect(ids(h, '*.web.default.cf')).toEqual(['b']);
  });

  it('keeps the last good topology when the file is deleted', async () => {
    const h = await harness(topologyJson([{ id: 'a', ip: '10.0.0.1' }]));
    rmSync(h.file);
    expect(h.store.reloadTopology()).toBe(false);
    expect(ids(h, '*.web.default.cf')).toEqual(['a']);
    expect(h.store.status().lastError).toContain('ENOENT');
  });

  it('serves aliases from the aliases directory, YAML and JSON, and counts a broken alias file', async () => {
    const h = await harness(topologyJson([{ id: 'a', ip: '10.0.0.1' }]), {
      'one.yaml': 'web.service.internal:\n  - q-s0.web.default.cf.bosh\n',
      'two.json': JSON.stringify({ '_.w.internal': ['_.web.default.cf.bosh'] }),
      'broken.yaml': 'a: [unclosed\n',
      'ignored.txt': 'not: [an alias file',
    });
    expect(h.store.current!.aliasTargets('web.service.internal')).toEqual(['q-s0.web.default.cf.bosh']);
    expect(h.store.current!.aliasTargets('a.w.internal')).toEqual(['a.web.default.cf.bosh']);
    expect(await h.metrics.value('presence_dns_topology_reload_failures_total')).toBe(1);
    expect(h.logs.some((l) => l.level === 50 && l.msg.includes('alias file broken.yaml rejected'))).toBe(true);
  });

  it('watches an aliases directory created after the start', async () => {
    const h = await harness(topologyJson([{ id: 'a', ip: '10.0.0.1' }]), null);
    mkdirSync(h.aliasesDir);
    writeFileSync(join(h.aliasesDir, 'late.yaml'), 'late.internal:\n  - a.web.default.cf.bosh\n');
    await waitFor(() => h.store.current!.aliasTargets('late.internal') !== null, 5000, 'the late alias file');
    expect(h.store.current!.aliasTargets('late.internal')).toEqual(['a.web.default.cf.bosh']);
    rmSync(join(h.aliasesDir, 'late.yaml'));
    await waitFor(() => h.store.current!.aliasTargets('late.internal') === null, 5000, 'the alias to go');
  });

  it('reloads on its own when the watched file changes', async () => {
    const h = await harness(topologyJson([{ id: 'a', ip: '10.0.0.1' }], {}, 1));
    writeFileSync(h.file, topologyJson([{ id: 'b', ip: '10.0.0.2' }], {}, 2));
    await waitFor(() => h.store.current!.version === 2, 5000, 'the new version');
    expect(ids(h, '*.web.default.cf')).toEqual(['b']);
  });
});
