// Breaking the database under two running daemons (a private PostgreSQL server this file
// starts and breaks itself, test/helpers/pg-server.ts): stopped under a steady UDP load,
// down while a daemon starts, tables emptied, its connections killed again and again, and
// restored from an older dump (revisions go backwards). What must hold: every known name
// answered rightly throughout by every node (0 failed queries, 0 records lost), nothing
// expired for the outage, and the file never without a live instance (never replaced by
// an empty or smaller topology).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import { PgServer, postgresWritableDir } from '../../helpers/pg-server.ts';
import { answers, metric, type TestInstance } from '../../presence/daemons.ts';
import { Fleet, liveRows, maxRevision } from './fleet.ts';
import { size, sleep } from './report.ts';

const TTL_SECONDS = 2;
const OUTAGE_MS = size(10_000, 60_000);
const TERMINATE_FOR_MS = size(10_000, 30_000);
let database: PgServer;
let fleet: Fleet;
/** What the setup started, stopped in reverse: only what it got to start if it failed halfway. */
const cleanups: Array<() => Promise<unknown>> = [];
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

const bothOnDatabase = async () => (await metric(a, 'presence_dns_db_up')) === 1 && (await metric(b, 'presence_dns_db_up')) === 1;

beforeAll(async () => {
  database = await PgServer.create();
  cleanups.push(() => database.destroy());
  fleet = new Fleet(database.url, TTL_SECONDS);
  cleanups.push(() => fleet.stop());
  a = await fleet.start('fault-a', A_INSTANCES);
  b = await fleet.start('fault-b', B_INSTANCES);
  await fleet.waitAllAnswer('both nodes to answer every instance');
});

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('database faults', () => {
  it(`database stopped for ${OUTAGE_MS / 1000} s under load: every query answered, nothing expired for the outage, nothing missing after`, async () => {
    await fleet.underLoad(`database stopped ${OUTAGE_MS / 1000} s, restarted`, async () => {
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
      await waitFor(bothOnDatabase, 30_000, 'both nodes back on the database');
      // Past a full TTL after the return: a reaper that counted the outage would have expired cells by now.
      await sleep(2 * TTL_SECONDS * 1000);
    });
    expect(await fleet.metricSum('presence_dns_cells_expired_total')).toBe(0);
    expect(await fleet.answersAll(a)).toBe(true);
    expect(await fleet.answersAll(b)).toBe(true);
    expect(fleet.fileRecords(b)).toBe(fleet.known.length);
    expect(await liveRows(database)).toBe(fleet.known.length);
  }, OUTAGE_MS + 60_000);

  it('a daemon started while the database is down answers from its file at once, every query to it from the moment its DNS port is open', async () => {
    await fleet.underLoad('daemon restarted while the database is down', async (watch) => {
      await database.stop('immediate');
      // Back as soon as it has bound its DNS port (not waiting for /ready). B is loaded from
      // the start; A from this moment on, every query to it counting (while it was down,
      // nothing could answer).
      a = await fleet.restart(a, { waitReady: false });
      watch.add(a);
      expect(await fleet.answersAll(a)).toBe(true);
      // A while on its file alone, then back on the database.
      await sleep(2000);
      await database.start();
      await waitFor(async () => (await metric(a, 'presence_dns_db_up')) === 1, 30_000, 'A back on the database');
    }, { daemons: [b] });
    expect(await fleet.answersAll(a)).toBe(true);
    expect(await fleet.answersAll(b)).toBe(true);
  });

  it('tables emptied: every instance back (re-registered), the file never replaced by an empty topology', async () => {
    let backAfterMs = 0;
    const smallest = await fleet.smallestFiles(() => fleet.underLoad('tables truncated', async () => {
      const truncatedAt = Date.now();
      await database.sql('TRUNCATE cells, presences, presence_revision');
      await waitFor(async () => (await liveRows(database)) === fleet.known.length, 30_000, 'rows re-registered');
      backAfterMs = Date.now() - truncatedAt;
      await fleet.waitAllAnswer('both nodes to answer everything', 30_000);
      await sleep(1000);
    }, { note: () => `rows back ${backAfterMs} ms after the truncate (one heartbeat: ${(TTL_SECONDS * 1000 / 3).toFixed(0)} ms)` }));
    expect(smallest).toEqual([fleet.known.length, fleet.known.length]);
    expect(await metric(a, 'presence_dns_registrar_reregistrations_total')).toBeGreaterThanOrEqual(1);
  });

  it(`connections killed with pg_terminate_backend every 2 s for ${TERMINATE_FOR_MS / 1000} s: reconnects, 0 failed answers, nothing expired`, async () => {
    let killed = 0;
    const expiredBefore = await fleet.metricSum('presence_dns_cells_expired_total');
    const smallest = await fleet.smallestFiles(() => fleet.underLoad(`pg_terminate_backend every 2 s for ${TERMINATE_FOR_MS / 1000} s`, async () => {
      for (const until = Date.now() + TERMINATE_FOR_MS; Date.now() < until;) {
        const rows = await database.sql<{ pid: number }>(
          "SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'");
        killed += rows.length;
        await sleep(2000);
      }
      await waitFor(bothOnDatabase, 30_000, 'both nodes back on the database');
    }));
    expect(killed).toBeGreaterThan(TERMINATE_FOR_MS / 2000);
    expect(smallest).toEqual([fleet.known.length, fleet.known.length]);
    expect(await fleet.metricSum('presence_dns_cells_expired_total')).toBe(expiredBefore);
    expect(await liveRows(database)).toBe(fleet.known.length);
    // Still syncing after it all: a change on A reaches B.
    fleet.register(a, LATE);
    await waitFor(async () => (await answers(b, LATE.group))[0] === LATE.ip, 30_000, 'a change made after the kills on B');
  }, TERMINATE_FOR_MS + 60_000);

  it('restored from an older dump (revisions go backwards): the syncers follow it, the file keeps every live instance, registrars re-register what the dump lacks', async () => {
    const dump = join(postgresWritableDir(), 'presence.dump');
    await database.dump(dump);
    const revisionAtDump = await maxRevision(database);
    // A change after the dump: one more instance on B, synced to A.
    const later: TestInstance = { id: 'fb-late', group: 'fblate', ip: '10.50.0.9' };
    fleet.register(b, later);
    // On both nodes before the restore: the load asks both for it.
    await fleet.waitAllAnswer('the later instance on both nodes', 30_000);
    // The restore recreates every table: the one row no registrar writes is a new row then
    // (the revision itself is no proof: a registrar may re-register the later instance at once).
    const clusterRow = async () => (await database.sql<{ xmin: string }>('SELECT xmin::text FROM presence_cluster'))[0].xmin;
    const clusterRowBefore = await clusterRow();
    const smallest = await fleet.smallestFiles(() => fleet.underLoad('restored from an older dump', async () => {
      await database.restore(dump);
      expect(await clusterRow()).not.toBe(clusterRowBefore);
      // At the dump's revision, or one past it when the later instance was re-registered already.
      expect(await maxRevision(database)).toBeLessThanOrEqual(revisionAtDump + 1);
      await waitFor(async () => (await liveRows(database)) === fleet.known.length, 30_000, 'the later instance re-registered');
      await fleet.waitFollowing(() => maxRevision(database), 30_000);
      await fleet.waitAllAnswer('both nodes to answer everything', 30_000);
      // Past a TTL: what the syncers carried is in the database again, so nothing is let go.
      await sleep(2 * TTL_SECONDS * 1000);
    }));
    expect(smallest).toEqual([fleet.known.length, fleet.known.length]);
    expect(await fleet.answersAll(a)).toBe(true);
    expect(await fleet.answersAll(b)).toBe(true);
  });
});
