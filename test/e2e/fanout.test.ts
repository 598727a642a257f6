// Two real daemons on one PostgreSQL and one nats-server with JetStream, with the fan-out
// on: one is a publisher candidate, the other only follows NATS. Each answers `dig` for
// the other's instances; the follower holds no connection for syncing while NATS answers;
// with NATS killed it syncs from the database, and back on NATS once it returns.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPgDb } from '../../src/presence/pg-db.ts';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.ts';
import { startNats, type NatsServer } from '../helpers/nats.ts';
import { testDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { silentLogger } from '../presence/fixtures.ts';
import { answers, instancesFile, metric, presenceConfig } from '../presence/daemons.ts';

let database: TestDatabase;
let nats: NatsServer;
let publisher: RunningDaemon;
let follower: RunningDaemon;
/** What beforeAll started, stopped in reverse order (whatever it got to). */
const cleanups: Array<() => Promise<unknown>> = [];

/** The follower connects as a role of its own, so its connections can be told from the publisher's. */
const FOLLOWER_ROLE = 'presence_dns_follower';

beforeAll(async () => {
  database = await testDatabase();
  cleanups.push(() => database.drop());
  const url = new URL(database.url);
  const admin = openPgDb(database.url, silentLogger);
  // The same password as the test server's user (the embedded server checks passwords; the shared one trusts).
  const password = url.password ? ` PASSWORD '${decodeURIComponent(url.password)}'` : '';
  await admin.query(`DO $$ BEGIN CREATE ROLE ${FOLLOWER_ROLE} LOGIN SUPERUSER${password}; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
  await admin.close();
  url.username = FOLLOWER_ROLE;
  const followerUrl = url.toString();
  nats = await startNats({ own: true, args: ['-js', '-sd', mkdtempSync(join(tmpdir(), 'presence-e2e-js-'))] });
  cleanups.push(() => nats.stop());
  const fanout = (publisherCandidate: boolean) => ({ nats_url: nats.url, publisher: publisherCandidate, interval: 0.5, enabled: true });
  publisher = await startDaemon({
    config: presenceConfig(database.url, 'cell-p', 5, { sync: fanout(true) }),
    files: { 'instances.d/p.json': instancesFile([{ id: 'p-1', group: 'api', ip: '10.9.0.1' }]) },
  });
  cleanups.push(() => publisher.stop());
  follower = await startDaemon({
    config: presenceConfig(followerUrl, 'cell-f', 5, { sync: fanout(false), reaper: { enabled: false } }),
    files: { 'instances.d/f.json': instancesFile([{ id: 'f-1', group: 'web', ip: '10.9.0.2' }]) },
  });
  cleanups.push(() => follower.stop());
}, 60_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe('fan-out between real daemons', () => {
  it('each answers for the other\'s instances, the follower through NATS', { timeout: 60_000 }, async () => {
    await waitFor(async () => (await answers(follower, 'api')).join() === '10.9.0.1', 30_000, 'the follower answering for the publisher\'s instance');
    await waitFor(async () => (await answers(publisher, 'web')).join() === '10.9.0.2', 30_000, 'the publisher answering for the follower\'s instance');
    expect(await metric(publisher, 'presence_dns_fanout_publishing')).toBe(1);
    expect(await metric(follower, 'presence_dns_fanout_publishing')).toBe(0);
    expect(await metric(follower, 'presence_dns_fanout_fallback')).toBe(0);
  });

  it('the follower holds one database connection (its registrar\'s), none for syncing', { timeout: 30_000 }, async () => {
    const db = openPgDb(database.url, silentLogger);
    try {
      // The syncer's pool closes a connection idle for 10 s (used once at start, to check the file against the database).
      await waitFor(async () => {
        const { rows } = await db.query<{ name: string }>(
          'SELECT application_name AS name FROM pg_stat_activity WHERE datname = current_database() AND usename = $1', [FOLLOWER_ROLE],
        );
        return rows.length === 1 && rows[0].name === 'presence-dns registrar';
      }, 25_000, 'the follower down to its registrar\'s connection');
    } finally {
      await db.close();
    }
  });

  it('with NATS down the follower syncs from the database, then returns to NATS', { timeout: 90_000 }, async () => {
    await nats.kill();
    await waitFor(async () => (await metric(follower, 'presence_dns_fanout_fallback')) === 1, 20_000, 'the follower falling back');
    // A change while NATS is down reaches the follower through the database.
    writeFileSync(join(publisher.dir, 'instances.d/p.json'), instancesFile([{ id: 'p-1', group: 'api', ip: '10.9.0.9' }]));
    await waitFor(async () => (await answers(follower, 'api')).join() === '10.9.0.9', 30_000, 'the change through the database');
    await nats.restart();
    await waitFor(async () => (await metric(follower, 'presence_dns_fanout_fallback')) === 0, 30_000, 'the follower back on NATS');
    writeFileSync(join(publisher.dir, 'instances.d/p.json'), instancesFile([{ id: 'p-1', group: 'api', ip: '10.9.0.10' }]));
    await waitFor(async () => (await answers(follower, 'api')).join() === '10.9.0.10', 30_000, 'a change through NATS again');
    expect(await metric(follower, 'presence_dns_fanout_fallback')).toBe(0);
  });
});
