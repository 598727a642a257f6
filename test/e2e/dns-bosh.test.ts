// End-to-end: an unmodified BOSH DNS records.json served as is, checked with dig.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addresses, dig, type DigResult } from '../helpers/dig.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';

const RECORDS_JSON = readFileSync(new URL('../control/fixtures/bosh-records.json', import.meta.url), 'utf8');
const API_0 = 'a9a5d7c4-5b5c-4d8a-9c4f-2a1f1b2c3d01';
const API_1 = 'a9a5d7c4-5b5c-4d8a-9c4f-2a1f1b2c3d02';

describe('an unmodified BOSH records.json', () => {
  let daemon: RunningDaemon;
  const q = (name: string, type = 'A'): Promise<DigResult> => dig(daemon.dnsPort, name, type);

  beforeAll(async () => {
    daemon = await startDaemon({ files: { 'records.json': RECORDS_JSON }, config: { topology: { file: 'records.json' } } });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
  });

  it('is loaded whole and reported ready with its version', async () => {
    const ready = (await (await daemon.admin('/ready')).json()) as { modules: { topology: { detail: unknown } } };
    expect(ready.modules.topology.detail).toMatchObject({ version: 17, records: 4, lastError: null, refused: null, workerUp: true });
    expect(daemon.logs.some((l) => l.includes('topology row skipped'))).toBe(false);
  });

  it('answers instance ids, groups and the short form', async () => {
    expect(addresses(await q(`${API_0}.api.default.cf.bosh.`))).toEqual(['10.10.0.11']);
    expect(addresses(await q('q-s0.api.default.cf.bosh.'))).toEqual(['10.10.0.11', '10.10.0.12']);
    expect(addresses(await q('q-a2.q-g3.bosh.'))).toEqual(['10.10.0.12']);
    expect(addresses(await q('*.worker.default.cf.bosh.', 'AAAA'))).toEqual(['fd10::21']);
  });

  it('counts every instance as healthy: s3 answers all, s1 none', async () => {
    expect(addresses(await q('q-s3.api.default.cf.bosh.'))).toEqual(['10.10.0.11', '10.10.0.12']);
    const unhealthy = await q('q-s1.api.default.cf.bosh.');
    expect(unhealthy.status).toBe('NOERROR');
    expect(unhealthy.answer).toEqual([]);
  });

  it('answers PTR from the records list, v4 and v6', async () => {
    const v4 = await q('11.0.10.10.in-addr.arpa.', 'PTR');
    expect(v4.answer.map((a) => a.data).sort()).toEqual([`${API_0}.api.default.cf.bosh.`, 'api-legacy.cf.internal.']);
    const v6 = await dig(daemon.dnsPort, '-x', 'fd10::21');
    expect(v6.answer.map((a) => a.data)).toEqual(['a9a5d7c4-5b5c-4d8a-9c4f-2a1f1b2c3d04.worker.default.cf.bosh.']);
  });

  it('answers BOSH alias objects, including the uuid placeholder', async () => {
    expect(addresses(await q('api.service.cf.internal.'))).toEqual(['10.10.0.11', '10.10.0.12']);
    expect(addresses(await q(`${API_1}.api.service.cf.internal.`))).toEqual(['10.10.0.12']);
    expect(addresses(await q('healthy-api.service.cf.internal.'))).toEqual(['10.10.0.11', '10.10.0.12']);
  });

  it('answers agent ids', async () => {
    expect(addresses(await q('agent-router-0.bosh-agent-id.'))).toEqual(['10.10.0.21']);
  });

  it('keeps the BOSH label-count rule: 3 labels before the TLD is FORMERR, the TLD NXDOMAIN', async () => {
    expect((await q('api.default.cf.bosh.')).status).toBe('FORMERR');
    expect((await q('bosh.')).status).toBe('NXDOMAIN');
  });

  it('answers a glob with a star inside a label NXDOMAIN, as BOSH DNS does', async () => {
    const r = await q('q-s0.a*i.default.cf.bosh.');
    expect(r.status).toBe('NXDOMAIN');
    expect(r.authority.map((a) => a.type)).toEqual(['SOA']);
    expect((await q('q-s0.*i.default.cf.bosh.')).status).toBe('NOERROR');
  });

  it('answers a short form whose filter label is itself q-g<N> FORMERR, as BOSH DNS does', async () => {
    expect((await q('q-g3.q-g3.bosh.')).status).toBe('FORMERR');
    expect(addresses(await q('q-s0.q-g3.bosh.'))).toEqual(['10.10.0.11', '10.10.0.12']);
  });
});

describe('a BOSH records.json with names the wire cannot carry', () => {
  // Once, a PTR query for such a `records` name threw in the encoder and the process exited.
  const doc = JSON.parse(RECORDS_JSON) as { records: string[][]; record_infos: unknown[][] };
  doc.records.push(['10.10.0.99', 'a..b.default.cf.bosh.'], ['10.10.0.98', `${'x'.repeat(70)}.default.cf.bosh.`], ['10.10.0.11', 'extra.cf.internal.']);
  doc.record_infos.push(['i'.repeat(70), '9', 'api', ['3'], 'z1', '1', 'default', '1', 'cf', '10.10.0.97', 'bosh.', 'agent-x', 5]);
  let daemon: RunningDaemon;

  beforeAll(async () => {
    daemon = await startDaemon({ files: { 'records.json': JSON.stringify(doc) }, config: { topology: { file: 'records.json' } } });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
  });

  it('skips those names with a warning naming each, and serves the rest', async () => {
    const warnings = daemon.logs.filter((l) => l.includes('"level":40')).join('\n');
    expect(warnings).toContain('records[5]: name \\"a..b.default.cf.bosh.\\" is not a DNS name: it has an empty label; skipped');
    expect(warnings).toContain('records[6]: name');
    expect(warnings).toContain('record_infos[4]: id');
    const ready = (await (await daemon.admin('/ready')).json()) as { modules: { topology: { detail: unknown } } };
    expect(ready.modules.topology.detail).toMatchObject({ version: 17, records: 4 });
  });

  it('answers PTR for those addresses without dying, and keeps answering', async () => {
    for (const ip of ['10.10.0.99', '10.10.0.98', '10.10.0.97']) {
      const r = await dig(daemon.dnsPort, '-x', ip);
      // Not an address of ours any more: not answered from the topology (forwarding is off).
      expect(r.status).toBe('REFUSED');
    }
    const v4 = await dig(daemon.dnsPort, '-x', '10.10.0.11');
    expect(v4.answer.map((a) => a.data).sort()).toEqual([`${API_0}.api.default.cf.bosh.`, 'api-legacy.cf.internal.', 'extra.cf.internal.']);
    expect(daemon.process.exitCode).toBeNull();
    expect(addresses(await dig(daemon.dnsPort, 'q-s0.api.default.cf.bosh.'))).toEqual(['10.10.0.11', '10.10.0.12']);
  });
});
