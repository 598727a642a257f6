// SIGTERM on a node of the presence pipeline: it exits 0 within 5 s (the product's
// promise: its shutdown deadlines add up to 4.5 s whatever hangs, and a clean
// stop takes a fraction of that), releases the reaper lock and deregisters its cell — its
// instances are tombstoned at once, so another node stops answering them long before the
// 60 s TTL could explain it, while its own file keeps them for a restart. With the
// database stopped it still exits 0 within 5 s (the TTL expiry is then the fallback).
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { addresses, dig } from '../helpers/dig.ts';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.ts';
import { PgServer } from '../helpers/pg-server.ts';
import { testDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { syncedTopology } from '../helpers/topology.ts';

const SYNC_INTERVAL_S = 1;
// Long, so that only the deregistration can explain the instances going away before it.
const TTL_S = 60;
/** How long another node may take to drop a deregistered cell's instances: generous for a loaded machine, far below the TTL. */
const DROPPED_MS = 30_000;
/** SIGTERM → exit: the product's promise. */
const EXIT_MS = 5000;
const instance = (id: string, ip: string) => JSON.stringify({ id, group: 'web', network: 'default', deployment: 'cf', ip });

function node(url: string, cellId: string, files: Record<string, string> = {}): Promise<RunningDaemon> {
  return startDaemon({
    config: {
      database: { url }, registrar: { enabled: true, cell_id: cellId, ttl: TTL_S }, reaper: { enabled: true },
      sync: { enabled: true, interval: SYNC_INTERVAL_S }, routes: { enabled: false },
    },
    files,
    waitReady: false,
  });
}

async function timedStop(daemon: RunningDaemon): Promise<{ code: number | null; ms: number }> {
  const started = performance.now();
  const code = await daemon.stop('SIGTERM');
  return { code, ms: performance.now() - started };
}

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe('SIGTERM deregisters this cell', () => {
  it('exits 0 within 5 s; another node drops its instances well before their TTL; the reaper lock is released', async () => {
    const database: TestDatabase = await testDatabase();
    cleanups.push(() => database.drop());
    const a = await node(database.url, 'cell-a', { 'instances.d/a.yaml': `instances:\n  - ${instance('a1', '10.0.9.1')}\n  - ${instance('a2', '10.0.9.2')}\n` });
    cleanups.push(() => a.stop());
    const b = await node(database.url, 'cell-b', { 'instances.d/b.yaml': `instances:\n  - ${instance('b1', '10.0.9.11')}\n` });
    cleanups.push(() => b.stop());
    await waitFor(async () => addresses(await dig(b.dnsPort, 'q-s0.web.default.cf.bosh.')).length === 3, 30_000, 'node B to answer every instance');
    const sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
    cleanups.push(() => sql.end());
    await waitFor(async () => (await sql.query("SELECT 1 FROM locks WHERE path = 'reaper'")).rowCount === 1, 30_000, 'a reaper to hold the lock');
    const lockHolder = async () => (await sql.query<{ cell_id: string }>("SELECT c.cell_id FROM locks l JOIN cells c ON c.owner::text = l.owner WHERE l.path = 'reaper'")).rows.map((r) => r.cell_id);

    const stopped = await timedStop(a);
    expect(stopped.code).toBe(0);
    expect(stopped.ms).toBeLessThan(EXIT_MS);
    expect(a.logs.some((l) => l.includes('cell deregistered; its instances are tombstoned'))).toBe(true);
    const exited = performance.now();
    await waitFor(async () => (await dig(b.dnsPort, 'a1.web.default.cf.bosh.')).status === 'NXDOMAIN', DROPPED_MS, "node B to drop node A's instances");
    const dropMs = performance.now() - exited;
    expect(addresses(await dig(b.dnsPort, 'q-s0.web.default.cf.bosh.'))).toEqual(['10.0.9.11']);
    expect((await sql.query('SELECT cell_id FROM cells ORDER BY cell_id')).rows).toEqual([{ cell_id: 'cell-b' }]);
    expect(await lockHolder()).not.toContain('cell-a');
    // Node A's own file still has them: its syncer stopped before the cell left, so a
    // restart with the database down answers them from the file.
    expect(syncedTopology(join(a.dir, 'topology.json')).instances.map((i) => i.id).sort()).toEqual(['a1', 'a2', 'b1']);
    console.log(`SIGTERM → exit ${stopped.ms.toFixed(0)} ms; node B dropped node A's instances ${dropMs.toFixed(0)} ms after its exit (sync interval ${SYNC_INTERVAL_S * 1000} ms)`);
  }, 90_000);

  it('exits 0 within 5 s with the database stopped', async () => {
    const server = await PgServer.create();
    cleanups.push(() => server.destroy());
    const a = await node(server.url, 'cell-down', { 'instances.d/a.yaml': `instances:\n  - ${instance('d1', '10.0.9.21')}\n` });
    cleanups.push(() => a.stop());
    await waitFor(async () => addresses(await dig(a.dnsPort, 'd1.web.default.cf.bosh.')).length === 1, 30_000, 'the instance to be answered');
    expect(((await (await a.admin('/v1/cells')).json()) as { cells: Array<{ cellId: string }> }).cells.map((c) => c.cellId)).toEqual(['cell-down']);
    await server.stop('immediate');
    expect(addresses(await dig(a.dnsPort, 'd1.web.default.cf.bosh.'))).toEqual(['10.0.9.21']);
    // The operator's views say so: the cell listing with a 503 naming the database, the status (from memory) with db down.
    const cells = await a.admin('/v1/cells');
    expect(cells.status).toBe(503);
    expect(await cells.json()).toMatchObject({ code: expect.stringMatching(/^DB_(DOWN|TIMEOUT)$/), error: expect.stringContaining('presence database') });
    await waitFor(async () => !((await (await a.admin('/v1/status')).json()) as { dbUp: boolean }).dbUp, 30_000, 'status to show the database down');
    const stopped = await timedStop(a);
    expect(stopped.code).toBe(0);
    expect(stopped.ms).toBeLessThan(EXIT_MS);
    expect(a.logs.some((l) => l.includes('could not deregister the cell'))).toBe(true);
    console.log(`SIGTERM with the database stopped → exit ${stopped.ms.toFixed(0)} ms`);
  }, 90_000);
});
