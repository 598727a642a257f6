// Failover: two daemons reach a private PostgreSQL through PgBouncer (transaction
// pooling); a streaming replica made with pg_basebackup -R falls behind, the primary
// takes one more registration and is then stopped as by a crash, the replica is promoted
// and PgBouncer repointed to it, as an operator does. The replica lacks the last
// transactions (revisions go backwards): the syncers resnapshot and carry the instance the
// snapshot lost while its registrar re-registers it. What clients see: 0 failed answers,
// 0 records lost on either node.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import { PgBouncer } from '../../helpers/pgbouncer.ts';
import { PgServer } from '../../helpers/pg-server.ts';
import { metric, type TestInstance } from '../../presence/daemons.ts';
import { Fleet, liveRows, maxRevision } from './fleet.ts';
import { sleep } from './report.ts';

const TTL_SECONDS = 2;
let primary: PgServer;
let replica: PgServer;
let bouncer: PgBouncer;
let fleet: Fleet;
/** What the setup started, stopped in reverse: only what it got to start if it failed halfway. */
const cleanups: Array<() => Promise<unknown>> = [];
let a: RunningDaemon;
let b: RunningDaemon;

beforeAll(async () => {
  primary = await PgServer.create();
  cleanups.push(() => primary.destroy());
  bouncer = await PgBouncer.start(primary.port);
  cleanups.push(() => bouncer.stop());
  fleet = new Fleet(bouncer.url, TTL_SECONDS);
  cleanups.push(() => fleet.stop());
  a = await fleet.start('failover-a', [{ id: 'fo-a1', group: 'foa1', ip: '10.60.0.1' }, { id: 'fo-a2', group: 'foa2', ip: '10.60.0.2' }]);
  b = await fleet.start('failover-b', [{ id: 'fo-b1', group: 'fob1', ip: '10.61.0.1' }, { id: 'fo-b2', group: 'fob2', ip: '10.61.0.2' }]);
  await fleet.waitAllAnswer('both nodes to answer every instance');
  replica = await PgServer.replicaOf(primary);
  // Last, with the primary: the daemons are on it after the failover.
  cleanups.unshift(() => replica.destroy());
});

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

it('fails over to a promoted replica that lost the last transactions: 0 failed answers, no file without an instance, the lost one re-registered', async () => {
  // The replica has everything so far, then falls behind: stopped, it receives no more WAL
  // (a paused replay would still apply what it received when promoted).
  await waitFor(async () => (await liveRows(replica)) === fleet.known.length, 30_000, 'the replica to catch up');
  await replica.stop();
  const late: TestInstance = { id: 'fo-late', group: 'folate', ip: '10.60.0.9' };
  fleet.register(a, late);
  // On both nodes before the failover: the load asks both for it.
  await fleet.waitAllAnswer('the late instance on both nodes', 30_000);
  const revisionOnPrimary = await maxRevision(primary);

  const smallest = await fleet.smallestFiles(() => fleet.underLoad('failover to a promoted replica (PgBouncer repointed)', async () => {
    await primary.stop('immediate');
    await replica.start();
    await replica.promote();
    expect(await liveRows(replica)).toBe(fleet.known.length - 1);
    // Before the daemons reach it: the new primary is behind the old one.
    expect(await maxRevision(replica)).toBeLessThan(revisionOnPrimary);
    bouncer.repoint(replica.port);
    await waitFor(async () => (await liveRows(replica)) === fleet.known.length, 30_000, 'the late instance re-registered on the new primary');
    await fleet.waitFollowing(() => maxRevision(replica));
    await waitFor(async () => (await metric(a, 'presence_dns_db_up')) === 1 && (await metric(b, 'presence_dns_db_up')) === 1, 30_000, 'both nodes on the new primary');
    await fleet.waitAllAnswer('both nodes to answer everything', 30_000);
    // Past a TTL: the carried instance is in the database again, so it is not let go.
    await sleep(2 * TTL_SECONDS * 1000);
  }));
  expect(smallest).toEqual([fleet.known.length, fleet.known.length]);
  expect(await fleet.answersAll(a)).toBe(true);
  expect(await fleet.answersAll(b)).toBe(true);
  expect(await fleet.metricSum('presence_dns_cells_expired_total')).toBe(0);
}, 90_000);
