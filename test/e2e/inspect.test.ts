// The operator's read-only endpoints against the real daemon: GET /v1/records (what DNS
// answers from, filtered), GET /v1/status, and GET /v1/cells without a database. A big
// topology is listed while dig-like queries keep being answered.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { Probe } from '../helpers/probe.ts';
import { topologyJson, type TestInstance } from '../helpers/topology.ts';

const run = promisify(execFile);

interface RecordsBody {
  version: number;
  total: number;
  matched: number;
  truncated: boolean;
  records: Array<{ name: string; id: string; ip: string; health: string | null; group: string; deployment: string }>;
}

interface Reply<T> {
  status: number;
  body: T;
}

const instances: TestInstance[] = [
  { id: 'w1', group: 'web', ip: '10.0.1.1', health: 'running', index: 0 },
  { id: 'w2', group: 'web', ip: '10.0.1.2', health: 'failing', index: 1 },
  { id: 'd1', group: 'db', deployment: 'data', ip: '10.0.2.1', health: 'running' },
];

describe('GET /v1/records, /v1/status and /v1/cells', () => {
  let daemon: RunningDaemon;
  const json = async (path: string): Promise<Reply<unknown>> => {
    const res = await daemon.admin(path);
    return { status: res.status, body: await res.json() };
  };
  const records = async (query: string) => (await json(`/v1/records${query}`)) as Reply<RecordsBody>;

  beforeAll(async () => {
    daemon = await startDaemon({ files: { 'topology.json': topologyJson(instances, {}, 7) } });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
  });

  it('lists what DNS sees, filtered by group, deployment and health', async () => {
    const all = await records('');
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ version: 7, total: 3, matched: 3, truncated: false });
    expect(all.body.records.map((r) => r.name).sort()).toEqual(['d1.db.default.data.bosh', 'w1.web.default.cf.bosh', 'w2.web.default.cf.bosh']);
    const ids = async (query: string) => (await records(`?${query}`)).body.records.map((r) => r.id).sort();
    expect(await ids('group=web')).toEqual(['w1', 'w2']);
    expect(await ids('group=web&health=running')).toEqual(['w1']);
    expect(await ids('deployment=data')).toEqual(['d1']);
    expect(await ids('health=failing')).toEqual(['w2']);
    expect(await ids('group=nope')).toEqual([]);
    const limited = await records('?limit=1');
    expect(limited.body).toMatchObject({ matched: 3, truncated: true });
    expect(limited.body.records).toHaveLength(1);
  });

  it('refuses a bad filter with a 400 naming it', async () => {
    const health = await json('/v1/records?health=great');
    expect(health).toEqual({ status: 400, body: { field: 'health', error: 'health: must be one of running, failing, unchecked, got "great"' } });
    expect(await json('/v1/records?colour=red')).toMatchObject({ status: 400, body: { error: expect.stringContaining('colour: unknown parameter') } });
    expect((await json('/v1/records?limit=0')).body).toMatchObject({ field: 'limit' });
  });

  it('shows the revision, the topology and what this node does not run as null', async () => {
    const { status, body } = await json('/v1/status');
    expect(status).toBe(200);
    expect(body).toMatchObject({
      revision: 7, records: 3, cell: null, staleSeconds: null, dbUp: null, reaperLockHolder: null,
      database: null, sync: null, reaper: null, routes: null, checks: null,
      topology: { loaded: true, lastError: null, workerUp: true },
      dns: { threads: 1, listen: expect.arrayContaining([{ address: '127.0.0.1', port: daemon.dnsPort, transport: 'udp' }]) },
    });
  });

  it('says plainly that a node without a database knows no cells', async () => {
    expect(await json('/v1/cells')).toMatchObject({ status: 503, body: { code: 'NO_DATABASE', error: expect.stringContaining('no presence database') } });
  });
});

describe('listing a big topology', () => {
  it('returns every record while queries keep being answered', async () => {
    const count = 100_000;
    const big: TestInstance[] = Array.from({ length: count }, (_, n) => ({ id: `i${n}`, group: `g${n % 100}`, ip: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}` }));
    const daemon = await startDaemon({ files: { 'topology.json': topologyJson(big) } });
    try {
      const names = ['i1.g1.default.cf.bosh', 'i99999.g99.default.cf.bosh'];
      const p99 = (latencies: number[]) => [...latencies].sort((x, y) => x - y)[Math.floor(latencies.length * 0.99)].toFixed(1);
      // The same load for a second with no listing: what the machine gives anyway (reported, not asserted).
      const idle = new Probe(daemon.dnsPort, names, { intervalMs: 5, timeoutMs: 3000 }).start();
      await new Promise((r) => setTimeout(r, 1000));
      const baseline = await idle.stop();
      const probe = new Probe(daemon.dnsPort, names, { intervalMs: 5, timeoutMs: 3000 }).start();
      // curl, in a process of its own, reads the listings: parsing 100k records here would
      // stall this process, and with it the probe's own clock.
      const out = join(daemon.dir, 'records.json');
      const started = performance.now();
      await run('curl', ['-sf', '-o', out, `http://127.0.0.1:${daemon.adminPort}/v1/records?limit=${count}`]);
      const listMs = performance.now() - started;
      await run('curl', ['-sf', '-o', `${out}.g7`, `http://127.0.0.1:${daemon.adminPort}/v1/records?group=g7&limit=5000`]);
      const seen = await probe.stop();
      const listed = JSON.parse(readFileSync(out, 'utf8')) as RecordsBody;
      const filtered = JSON.parse(readFileSync(`${out}.g7`, 'utf8')) as RecordsBody;
      expect(listed).toMatchObject({ total: count, matched: count, truncated: false });
      expect(new Set(listed.records.map((r) => r.id)).size).toBe(count);
      expect(filtered.matched).toBe(count / 100);
      expect(seen.sent).toBeGreaterThan(20);
      expect(seen.unanswered).toBe(0);
      expect(seen.wrong).toEqual([]);
      console.log(`GET /v1/records of ${count} records: ${listMs.toFixed(0)} ms; meanwhile ${seen.sent} queries, ${seen.unanswered} unanswered, latency p99 ${p99(seen.latencies)} ms, max ${Math.max(...seen.latencies).toFixed(1)} ms (without a listing: p99 ${p99(baseline.latencies)} ms, max ${Math.max(...baseline.latencies).toFixed(1)} ms)`);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  }, 60_000);
});
