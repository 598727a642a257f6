// Breaking the database under two running daemons (a private PostgreSQL server this file
// starts and breaks itself, test/helpers/pg-server.ts): stopped under a steady UDP load,
// down while a daemon starts, tables emptied, its connections killed again and again, and
// restored from an older dump (revisions go backwards). What must hold: every known name
// answered throughout, nothing expired for the outage, nothing missing after, and the file
// never without a live instance (never replaced by an empty or smaller topology).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import { PgServer, postgresWritableDir } from '../../helpers/pg-server.ts';
import { syncedInstances } from '../../helpers/topology.ts';
import { answers, instancesFile, metric, presenceConfig, type TestInstance } from '../../presence/daemons.ts';
import { daemonRss, Load, report, size, sleep } from './report.ts';

const TTL_SECONDS = 2;
const OUTAGE_MS = size(10_000, 60_000);
const TERMINATE_FOR_MS = size(10_000, 30_000);
let database: PgServer;
let a: RunningDaemon;
let b: RunningDaemon;

const A_INSTANCES: TestInstance[] = [
  { id: 'fa-1', group: 'fa1', ip: '10.40.0.1' }, { id: 'fa-2', group: 'fa2', ip: '10.40.0.2' }, { id: 'fa-3', group: 'fa3', ip: '10.40.0.3' },
];
const B_INSTANCES: TestInstance[] = [
  { id: 'fb-1', group: 'fb1', ip: '10.50.0.1' }, { id: 'fb-2', group: 'fb2', ip: '10.50.0.2' }, { id: 'fb-3', group: 'fb3', ip: '10.50.0.3' },
];
/** Registered on A after the dump the restore scenario goes back to. */
const LATE: TestInstance = { id: 'fa-late', group: 'falate', ip: '10.40.0.9' };
let all = [...A_INSTANCES, ...B_INSTANCES];

function start(cellId: string, instances: TestInstance[], dir?: string, waitReady = true): Promise<RunningDaemon> {
  return startDaemon({ dir, config: presenceConfig(database.url, cellId, TTL_SECONDS), files: { 'instances.d/base.json': instancesFile(instances) }, waitReady });
}

const name = (i: TestInstance) => `q-s4.${i.group}.default.cf.bosh`;

async function allAnswered(daemon: RunningDaemon): Promise<boolean> {
  for (const i of all) if ((await answers(daemon, i.group))[0] !== i.ip) return false;
  return true;
}

function fileRecords(daemon: RunningDaemon): number {
  return syncedInstances(join(daemon.dir, 'topology.json')).length;
}

/** Known instances missing from a daemon's file, on either node. */
function recordsLost(): number {
  const ids = (d: RunningDaemon) => new Set(syncedInstances(join(d.dir, 'topology.json')).map((i) => i.id));
  return [a, b].reduce((n, d) => n + all.filter((i) => !ids(d).has(i.id)).length, 0);
}

/** The UDP load on every known name of both nodes. */
function load(daemons = [a, b]): Load {
  return new Load(daemons, new Map(all.map((i) => [name(i), [i.ip]])));
}

/** Runs `scenario` under load, adds its row and asserts what clients saw. */
async function underLoad(scenario: string, run: () => Promise<void>, daemons = [a, b]): Promise<void> {
  const running = load(daemons);
  const outcome = await run().then(() => null, (err: unknown) => err);
  const seen = await running.stop();
  report({ scenario, sent: seen.sent, failed: seen.failed, recordsLost: recordsLost(), rssBytes: daemonRss(a, b) });
  if (outcome) throw outcome;
  expect(seen.failures).toEqual([]);
  expect(seen.sent).toBeGreaterThan(100);
}

/** Records the smallest number of records either file held while `run` ran. */
async function smallestFiles(run: () => Promise<void>): Promise<{ a: number; b: number }> {
  const smallest = { a: Infinity, b: Infinity };
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      smallest.a = Math.min(smallest.a, fileRecords(a));
      smallest.b = Math.min(smallest.b, fileRecords(b));
      await sleep(10);
    }
  })();
  try {
    await run();
  } finally {
    watching = false;
    await watcher;
  }
  return smallest;
}

async function liveRows(): Promise<number> {
  return Number((await database.sql<{ n: string }>('SELECT count(*) AS n FROM presences WHERE NOT deleted'))[0].n);
}

beforeAll(async () => {
  database = await PgServer.create();
  a = await start('fault-a', A_INSTANCES);
  b = await start('fault-b', B_INSTANCES);
  await waitFor(async () => (await allAnswered(a)) && (await allAnswered(b)), 15_000, 'both nodes to answer every instance');
});

afterAll(async () => {
  await Promise.all([a?.stop('SIGKILL'), b?.stop('SIGKILL')]);
  await database?.destroy();
});

describe('database faults', () => {
  it(`database stopped for ${OUTAGE_MS / 1000} s under load: every query answered, nothing expired for the outage, nothing missing after`, async () => {
    await underLoad(`database stopped ${OUTAGE_MS / 1000} s, restarted`, async () => {
      await sleep(500);
      await database.stop('immediate');
      // Five TTLs or more of outage: long enough that a naive reaper would expire everyone.
      await sleep(OUTAGE_MS);
      expect(await metric(a, 'presence_dns_db_up')).toBe(0);
      expect(await metric(b, 'presence_dns_stale_seconds')).toBeGreaterThan(TTL_SECONDS);
      const ready = await b.admin('/ready');
      expect(ready.status).toBe(200);
      expect(((await ready.json()) as { modules: { presence: { detail: { state: string } } } }).modules.presence.detail.state).toBe('stale');
      await database.start();
      await waitFor(async () => (await metric(a, 'presence_dns_db_up')) === 1 && (await metric(b, 'presence_dns_db_up')) === 1, 15_000, 'both nodes back on the database');
      // Past a full TTL after the return: a reaper that counted the outage would have expired cells by now.
      await sleep(2 * TTL_SECONDS * 1000);
    }, [a, b]);
    expect(await metric(a, 'presence_dns_cells_expired_total') + (await metric(b, 'presence_dns_cells_expired_total'))).toBe(0);
    expect(await allAnswered(a)).toBe(true);
    expect(await allAnswered(b)).toBe(true);
    expect(fileRecords(b)).toBe(all.length);
    expect(await liveRows()).toBe(all.length);
  }, OUTAGE_MS + 60_000);

  it('a daemon started while the database is down answers from its file at once', async () => {
    await underLoad('daemon restarted while the database is down', async () => {
      await database.stop('immediate');
      await a.stop('SIGKILL');
      const startedAt = Date.now();
      a = await start('fault-a', A_INSTANCES, a.dir);
      expect(await allAnswered(a)).toBe(true);
      expect(Date.now() - startedAt).toBeLessThan(10_000);
      await database.start();
      await waitFor(async () => (await metric(a, 'presence_dns_db_up')) === 1, 15_000, 'A back on the database');
    }, [b]);
    expect(await allAnswered(b)).toBe(true);
  });

  it('tables emptied: every instance back within one heartbeat interval, the file never replaced by an empty topology', async () => {
    let backAfterMs = 0;
    const smallest = await smallestFiles(() => underLoad('tables truncated', async () => {
      const truncatedAt = Date.now();
      await database.sql('TRUNCATE cells, presences, presence_revision');
      await waitFor(async () => (await liveRows()) === all.length, 10_000, 'rows re-registered');
      backAfterMs = Date.now() - truncatedAt;
      await waitFor(async () => (await allAnswered(a)) && (await allAnswered(b)), 10_000, 'both nodes to answer everything');
      await sleep(1000);
    }));
    // One heartbeat is at most ttl/3; allow for the write and a loaded machine.
    expect(backAfterMs).toBeLessThan((TTL_SECONDS * 1000) / 3 + 1000);
    expect(smallest).toEqual({ a: all.length, b: all.length });
    expect(await metric(a, 'presence_dns_registrar_reregistrations_total')).toBeGreaterThanOrEqual(1);
  });

  it(`connections killed with pg_terminate_backend every 2 s for ${TERMINATE_FOR_MS / 1000} s: reconnects, 0 failed answers, nothing expired`, async () => {
    let killed = 0;
    const expiredBefore = await metric(a, 'presence_dns_cells_expired_total') + (await metric(b, 'presence_dns_cells_expired_total'));
    const smallest = await smallestFiles(() => underLoad(`pg_terminate_backend every 2 s for ${TERMINATE_FOR_MS / 1000} s`, async () => {
      for (const until = Date.now() + TERMINATE_FOR_MS; Date.now() < until;) {
        const rows = await database.sql<{ pid: number }>(
          "SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'");
        killed += rows.length;
        await sleep(2000);
      }
      // Both nodes are back on the database and still sync: a change made now reaches the other node.
      await waitFor(async () => (await metric(a, 'presence_dns_db_up')) === 1 && (await metric(b, 'presence_dns_db_up')) === 1, 15_000, 'both nodes back on the database');
    }));
    expect(killed).toBeGreaterThan(TERMINATE_FOR_MS / 2000);
    expect(smallest).toEqual({ a: all.length, b: all.length });
    expect(await metric(a, 'presence_dns_cells_expired_total') + (await metric(b, 'presence_dns_cells_expired_total'))).toBe(expiredBefore);
    expect(await liveRows()).toBe(all.length);
  }, TERMINATE_FOR_MS + 60_000);

  it('restored from an older dump (revisions go backwards): syncers resnapshot, the file keeps every live instance, registrars re-register what the dump lacks', async () => {
    const dump = join(postgresWritableDir(), 'presence.dump');
    await database.dump(dump);
    const revisionAtDump = Number((await database.sql<{ r: string }>('SELECT max(revision) AS r FROM presences'))[0].r);
    // A change after the dump: one more instance on A, synced to B.
    writeFileSync(join(a.dir, 'instances.d/late.json'), instancesFile([LATE]));
    all = [...all, LATE];
    await waitFor(async () => (await answers(b, LATE.group))[0] === LATE.ip, 10_000, 'the late instance on B');
    const smallest = await smallestFiles(() => underLoad('restored from an older dump', async () => {
      await database.restore(dump);
      expect(Number((await database.sql<{ r: string }>('SELECT max(revision) AS r FROM presences'))[0].r)).toBe(revisionAtDump);
      await waitFor(async () => (await liveRows()) === all.length, 10_000, 'the late instance re-registered');
      await waitFor(() => [a, b].every((d) => d.logs.some((l) => l.includes('revision went backwards'))), 10_000, 'both syncers to resnapshot');
      await waitFor(async () => (await allAnswered(a)) && (await allAnswered(b)), 10_000, 'both nodes to answer everything');
      // Past a TTL: what the syncers carried is in the database again, so nothing is let go.
      await sleep(2 * TTL_SECONDS * 1000);
    }));
    expect(smallest).toEqual({ a: all.length, b: all.length });
    expect(await allAnswered(a)).toBe(true);
    expect(await allAnswered(b)).toBe(true);
  });
});
