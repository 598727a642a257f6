// Daemons sharing one real PostgreSQL, each with its own cell, registrations directory
// and topology file: registrations on one node are answered by `dig` on another,
// removals and dead cells turn into NXDOMAIN there, the reaper lock moves when its
// holder dies, and the mass-expiry guard holds when most cells go silent at once.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.ts';
import { testDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { answers, instancesFile, metric, presenceConfig, type TestInstance } from '../presence/daemons.ts';

const TTL_SECONDS = 2;
let database: TestDatabase;
const daemons: RunningDaemon[] = [];

async function node(cellId: string, instances: TestInstance[] = []): Promise<RunningDaemon> {
  const daemon = await startDaemon({
    config: presenceConfig(database.url, cellId, TTL_SECONDS),
    files: { 'instances.d/base.json': instancesFile(instances) },
  });
  daemons.push(daemon);
  return daemon;
}

async function reaperHolder(daemon: RunningDaemon): Promise<boolean> {
  const body = (await (await daemon.admin('/v1/reaper')).json()) as { reaper: { holder: boolean } };
  return body.reaper.holder;
}

beforeAll(async () => {
  database = await testDatabase();
  return () => database.drop();
});

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop('SIGKILL')));
});

describe('two cells, one database', () => {
  let a: RunningDaemon;
  let b: RunningDaemon;

  beforeAll(async () => {
    a = await node('cell-a', [{ id: 'a-base', group: 'abase', ip: '10.10.0.1' }]);
    await waitFor(() => reaperHolder(a), 10_000, 'A to hold the reaper lock');
    b = await node('cell-b', [{ id: 'b-base', group: 'bbase', ip: '10.20.0.1' }]);
    await waitFor(async () => (await answers(b, 'abase'))[0] === '10.10.0.1', 10_000, 'B to answer A’s base instance');
  });

  it('an instance registered on A is answered on B; removed on A → NXDOMAIN on B', async () => {
    const file = join(a.dir, 'instances.d', 'extra.json');
    writeFileSync(file, instancesFile([{ id: 'a-extra', group: 'aextra', ip: '10.10.0.7' }]));
    await waitFor(async () => (await answers(b, 'aextra'))[0] === '10.10.0.7', 10_000, 'B to answer the new instance');
    expect(await answers(a, 'aextra')).toEqual(['10.10.0.7']);
    expect(await answers(a, 'bbase')).toEqual(['10.20.0.1']);

    rmSync(file);
    await waitFor(async () => (await answers(b, 'aextra'))[0] === 'NXDOMAIN', 10_000, 'NXDOMAIN on B');
    expect(await answers(b, 'abase')).toEqual(['10.10.0.1']);
  });

  it('killing the reaper’s holder (kill -9) hands the lock over; its cell expires on B after its TTL, not before', async () => {
    expect(await reaperHolder(b)).toBe(false);
    const killedAt = Date.now();
    await a.stop('SIGKILL');
    // Still answered: the cell's TTL has not passed.
    expect(await answers(b, 'abase')).toEqual(['10.10.0.1']);
    await waitFor(() => reaperHolder(b), 15_000, 'B to take over the reaper lock');
    await waitFor(async () => (await answers(b, 'abase'))[0] === 'NXDOMAIN', 20_000, 'A’s instances gone on B');
    // The last heartbeat was at most ttl/3 before the kill; expiry needs a whole TTL of silence after it.
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual((TTL_SECONDS * 2000) / 3);
    expect(await answers(b, 'bbase')).toEqual(['10.20.0.1']);
    expect(await metric(b, 'presence_dns_cells_expired_total')).toBe(1);
    expect(await metric(b, 'presence_dns_db_up')).toBe(1);
  });
});

describe('mass-expiry guard', () => {
  it('holds when most cells go silent at once, until an operator releases it', async () => {
    const survivor = await node('guard-1', [{ id: 'g1', group: 'guard1', ip: '10.30.0.1' }]);
    const two = await node('guard-2', [{ id: 'g2', group: 'guard2', ip: '10.30.0.2' }]);
    await node('guard-3', [{ id: 'g3', group: 'guard3', ip: '10.30.0.3' }]);
    await waitFor(async () => (await answers(survivor, 'guard3'))[0] === '10.30.0.3', 10_000, 'survivor to see guard-3');
    // The survivor must be the reaper (cells of the earlier test are gone or alive elsewhere).
    await Promise.all(daemons.filter((d) => d !== survivor).map((d) => d.stop('SIGKILL')));
    await waitFor(() => reaperHolder(survivor), 15_000, 'survivor to hold the reaper lock');
    await waitFor(async () => (await metric(survivor, 'presence_dns_expiry_guard_trips_total')) === 1, 20_000, 'the guard to trip');
    expect(two.process.exitCode ?? two.process.signalCode).toBeTruthy();
    // Well past the TTL: the silent cells are still answered.
    await new Promise((r) => setTimeout(r, TTL_SECONDS * 1000));
    expect(await answers(survivor, 'guard2')).toEqual(['10.30.0.2']);
    expect(await answers(survivor, 'guard3')).toEqual(['10.30.0.3']);
    expect(survivor.logs.some((l) => l.includes('mass-expiry guard'))).toBe(true);

    const released = await survivor.admin('/v1/reaper/release-guard', { method: 'POST' });
    expect(released.status).toBe(200);
    await waitFor(async () => (await answers(survivor, 'guard2'))[0] === 'NXDOMAIN' && (await answers(survivor, 'guard3'))[0] === 'NXDOMAIN', 10_000, 'held cells expired after release');
    expect(await answers(survivor, 'guard1')).toEqual(['10.30.0.1']);
  });
});
