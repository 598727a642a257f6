// Breaking the database under two running daemons (a private PostgreSQL this file starts
// and stops itself): stopped under a steady dig load, down while a daemon starts, tables
// emptied. What must hold: every known name answered throughout, nothing expired for
// the outage, nothing missing after, and the file never replaced by an empty topology.
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.ts';
import { ownPostgres, type OwnPostgres } from '../helpers/postgres.ts';
import { syncedInstances } from '../helpers/topology.ts';
import { answers, instancesFile, metric, presenceConfig, type TestInstance } from '../presence/daemons.ts';

const TTL_SECONDS = 2;
let database: OwnPostgres;
let a: RunningDaemon;
let b: RunningDaemon;

const A_INSTANCES: TestInstance[] = [
  { id: 'fa-1', group: 'fa1', ip: '10.40.0.1' }, { id: 'fa-2', group: 'fa2', ip: '10.40.0.2' }, { id: 'fa-3', group: 'fa3', ip: '10.40.0.3' },
];
const B_INSTANCES: TestInstance[] = [
  { id: 'fb-1', group: 'fb1', ip: '10.50.0.1' }, { id: 'fb-2', group: 'fb2', ip: '10.50.0.2' }, { id: 'fb-3', group: 'fb3', ip: '10.50.0.3' },
];
const ALL = [...A_INSTANCES, ...B_INSTANCES];

function start(cellId: string, instances: TestInstance[], dir?: string, waitReady = true): Promise<RunningDaemon> {
  return startDaemon({ dir, config: presenceConfig(database.url, cellId, TTL_SECONDS), files: { 'instances.d/base.json': instancesFile(instances) }, waitReady });
}

async function allAnswered(daemon: RunningDaemon): Promise<boolean> {
  for (const i of ALL) if ((await answers(daemon, i.group))[0] !== i.ip) return false;
  return true;
}

function fileRecords(daemon: RunningDaemon): number {
  return syncedInstances(join(daemon.dir, 'topology.json')).length;
}

/** Queries every known name on both nodes until `until` resolves; returns the misses. */
async function digLoad(until: Promise<void>): Promise<{ queries: number; misses: string[] }> {
  let done = false;
  void until.then(() => (done = true));
  const misses: string[] = [];
  let queries = 0;
  await Promise.all([a, b].map(async (daemon) => {
    // Bounded: the load stops when the scenario does, and at most after 2,000 rounds.
    for (let round = 0; !done && round < 2000; round++) {
      for (const i of ALL) {
        queries++;
        const got = await answers(daemon, i.group);
        if (got[0] !== i.ip) misses.push(`${daemon === a ? 'A' : 'B'} ${i.group}: ${got.join(',')}`);
      }
    }
  }));
  return { queries, misses };
}

beforeAll(async () => {
  database = await ownPostgres();
  a = await start('fault-a', A_INSTANCES);
  b = await start('fault-b', B_INSTANCES);
  await waitFor(async () => (await allAnswered(a)) && (await allAnswered(b)), 15_000, 'both nodes to answer every instance');
});

afterAll(async () => {
  await Promise.all([a?.stop('SIGKILL'), b?.stop('SIGKILL')]);
  await database?.drop();
});

describe('database faults', () => {
  it('database stopped under dig load: every query answered, nothing expired for the outage, nothing missing after', async () => {
    const scenario = (async () => {
      await new Promise((r) => setTimeout(r, 500));
      await database.pause();
      // Three TTLs of outage: long enough that a naive reaper would expire everyone.
      await new Promise((r) => setTimeout(r, 3 * TTL_SECONDS * 1000));
      expect(await metric(a, 'presence_dns_db_up')).toBe(0);
      expect(await metric(b, 'presence_dns_stale_seconds')).toBeGreaterThan(TTL_SECONDS);
      const ready = await b.admin('/ready');
      expect(ready.status).toBe(200);
      expect(((await ready.json()) as { modules: { presence: { detail: { state: string } } } }).modules.presence.detail.state).toBe('stale');
      await database.resume();
      await waitFor(async () => (await metric(a, 'presence_dns_db_up')) === 1 && (await metric(b, 'presence_dns_db_up')) === 1, 15_000, 'both nodes back on the database');
      // Past a full TTL after the return: a reaper that counted the outage would have expired cells by now.
      await new Promise((r) => setTimeout(r, 2 * TTL_SECONDS * 1000));
    })();
    const load = await digLoad(scenario);
    await scenario;
    expect(load.misses).toEqual([]);
    expect(load.queries).toBeGreaterThan(100);
    expect(await metric(a, 'presence_dns_cells_expired_total') + (await metric(b, 'presence_dns_cells_expired_total'))).toBe(0);
    expect(await allAnswered(a)).toBe(true);
    expect(await allAnswered(b)).toBe(true);
    expect(fileRecords(b)).toBe(ALL.length);
  });

  it('a daemon started while the database is down answers from its file at once', async () => {
    await database.pause();
    await a.stop('SIGKILL');
    const startedAt = Date.now();
    a = await start('fault-a', A_INSTANCES, a.dir);
    expect(await allAnswered(a)).toBe(true);
    expect(Date.now() - startedAt).toBeLessThan(10_000);
    await database.resume();
    await waitFor(async () => (await metric(a, 'presence_dns_db_up')) === 1, 15_000, 'A back on the database');
    expect(await allAnswered(b)).toBe(true);
  });

  it('tables emptied: every instance back within one heartbeat interval, the file never replaced by an empty topology', async () => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    const smallest = { a: Infinity, b: Infinity };
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        smallest.a = Math.min(smallest.a, fileRecords(a));
        smallest.b = Math.min(smallest.b, fileRecords(b));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const truncatedAt = Date.now();
    await client.query('TRUNCATE cells, presences, presence_revision');
    await waitFor(async () => Number((await client.query('SELECT count(*) AS n FROM presences WHERE NOT deleted')).rows[0].n) === ALL.length, 10_000, 'rows re-registered');
    const backAfterMs = Date.now() - truncatedAt;
    await waitFor(async () => (await allAnswered(a)) && (await allAnswered(b)), 10_000, 'both nodes to answer everything');
    await new Promise((r) => setTimeout(r, 1000));
    watching = false;
    await watcher;
    await client.end();
    // One heartbeat is at most ttl/3; allow for the write and a loaded machine.
    expect(backAfterMs).toBeLessThan((TTL_SECONDS * 1000) / 3 + 1000);
    expect(smallest).toEqual({ a: ALL.length, b: ALL.length });
    expect(await metric(a, 'presence_dns_registrar_reregistrations_total')).toBeGreaterThanOrEqual(1);
  });
});
