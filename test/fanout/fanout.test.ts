// The fan-out on a real PostgreSQL and a real nats-server with JetStream: publishers
// elected by the SQL lock publish each change once; followers (real control planes writing
// real topology files) read NATS, fill gaps from the stream, fall back to the database
// when NATS cannot answer, and take database snapshots only a few at a time. Passes are run
// by hand and the follower's sense of time is a manual clock; nothing waits for a TTL.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { startControlPlane, type RunningControlPlane } from '../../src/control/index.ts';
import { BEHIND_GRACE_PASSES } from '../../src/fanout/fallback.ts';
import { HEAD_MISSES } from '../../src/fanout/follower.ts';
import { snapshotHeaderLine, snapshotRowLine, snapshotTrailerLine } from '../../src/fanout/protocol.ts';
import type { PresenceRow } from '../../src/presence/store.ts';
import { FallbackSource, fanoutNames, NatsChangeSource, Publisher, startFanout } from '../../src/fanout/index.ts';
import { SqlChangeSource } from '../../src/presence/change-source.ts';
import type { Db } from '../../src/presence/db.ts';
import { openPgDb } from '../../src/presence/pg-db.ts';
import { migrate } from '../../src/presence/schema.ts';
import { PresenceStore } from '../../src/presence/store.ts';
import type { Registration } from '../../src/registrations/types.ts';
import { waitFor } from '../helpers/daemon.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { startNats, type NatsServer } from '../helpers/nats.ts';
import { TcpLink } from '../helpers/tcp-link.ts';
import { PgServer } from '../helpers/pg-server.ts';
import { testDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { syncedTopology } from '../helpers/topology.ts';
import { registration, silentLogger } from '../presence/fixtures.ts';

const TTL = 3000;
const INTERVAL = 1000;
/** A database no follower may read while the fan-out answers: any query there fails. */
const NO_DATABASE = 'postgres://postgres@127.0.0.1:1/none';

let database: TestDatabase;
let db: Db;
let store: PresenceStore;
let nats: NatsServer;

beforeAll(async () => {
  database = await testDatabase();
  db = openPgDb(database.url, silentLogger);
  await migrate(db);
  store = new PresenceStore(db);
  nats = await startNats({ own: true, args: ['-js', '-sd', mkdtempSync(join(tmpdir(), 'presence-fanout-js-'))] });
});

afterAll(async () => {
  await nats.stop();
  await db.close();
  await database.drop();
});

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let prefixSeq = 0;
/** Each test on names of its own, so no test sees another's stream. */
function freshNames() {
  return fanoutNames(`pdns-test-${process.pid}-${++prefixSeq}`);
}

async function natsClient(url = nats.url): Promise<NatsConnection> {
  const nc = await connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 100, reconnectJitter: 0 });
  cleanups.push(() => nc.close());
  return nc;
}

/** Writes a cell's instances as its registrar would (one transaction, a revision per changed row). */
async function setCell(cellId: string, registrations: Registration[], into = store): Promise<void> {
  await into.registerCell({ cellId, owner: crypto.randomUUID(), address: null, ttlMs: TTL });
  await into.writeInstances(cellId, registrations);
}

async function live(from = db): Promise<Array<{ id: string; ip: string }>> {
  const { rows } = await from.query<{ id: string; ip: string }>('SELECT id, ip FROM presences WHERE NOT deleted ORDER BY id');
  return rows;
}

async function publisher(names: ReturnType<typeof fanoutNames>, clock = new ManualClock({ runTimers: false }), snapshotEvery = 1000, from = store) {
  const nc = await natsClient();
  const p = new Publisher({
    nc, names, source: new SqlChangeSource(from, { listen: false }), owner: crypto.randomUUID(), lockTtlMs: TTL, intervalMs: INTERVAL,
    snapshotEvery, clock, logger: silentLogger,
  });
  cleanups.push(() => p.stop());
  return { publisher: p, nc, clock };
}

/** The real follower, counting the rows its published-snapshot reads hand over, with a hook on the first. */
class ObservedNatsSource extends NatsChangeSource {
  snapshotRows = 0;
  onFirstRow: (() => void) | null = null;

  override snapshot(onRow: (row: PresenceRow) => void): ReturnType<NatsChangeSource['snapshot']> {
    return super.snapshot((row) => {
      if (this.snapshotRows++ === 0) this.onFirstRow?.();
      onRow(row);
    });
  }
}

/** A node: a control plane writing its own topology file, following the fan-out; its passes are run by hand. */
async function follower(names: ReturnType<typeof fanoutNames>, options: { sqlUrl?: string; slots?: number; natsUrl?: string } = {}) {
  const nc = await natsClient(options.natsUrl);
  const clock = new ManualClock();
  const natsSource = new ObservedNatsSource({ nc, names, intervalMs: INTERVAL, clock });
  natsSource.listen();
  const sqlDb = openPgDb(options.sqlUrl ?? NO_DATABASE, silentLogger);
  cleanups.push(() => sqlDb.close());
  const sql = new SqlChangeSource(new PresenceStore(sqlDb), { listen: false });
  const source = new FallbackSource({ nats: natsSource, sql, snapshotSlots: options.slots ?? 4, intervalMs: INTERVAL, clock: systemClock, logger: silentLogger });
  const file = join(mkdtempSync(join(tmpdir(), 'presence-fanout-')), 'topology.json');
  const plane: RunningControlPlane = await startControlPlane({
    file, aliasesDir: join(file, '..', 'aliases.d'), domains: [], logger: silentLogger, post: () => undefined,
    sync: { source, intervalMs: INTERVAL, ttlMs: TTL, maxDropFraction: 0.3, guardHold: 10, clock, scheduled: false },
  });
  cleanups.push(() => plane.stop());
  const { syncer } = plane;
  if (!syncer) throw new Error('the control plane started without its syncer');
  const instances = () => syncedTopology(file).instances.map((i) => ({ id: i.id, ip: i.ip })).sort((a, b) => a.id.localeCompare(b.id));
  return {
    nc, clock, nats: natsSource, source, file, instances,
    /** Lets what NATS has sent arrive (when connected), then runs a sync pass. */
    async sync() {
      await nc.flush().catch(() => undefined);
      await syncer.tick();
    },
  };
}

/** A promise and the function that resolves it. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve: () => resolve() };
}

/**
 * Replaces the published snapshot with one of `count` valid rows that barely compress (each
 * a copy of a row of the database under a random id), so it spans many of the object store's
 * chunks.
 */
async function publishBulkySnapshot(pub: { publisher: Publisher; nc: NatsConnection }, names: ReturnType<typeof fanoutNames>, count: number): Promise<void> {
  const template = await new Promise<PresenceRow>((resolve) => void store.snapshot(resolve));
  const rows = Array.from({ length: count }, (_, i) => ({ ...template, id: crypto.randomUUID(), revision: i + 1 }));
  const { cluster, epoch } = { cluster: await store.clusterId(), epoch: pub.publisher.status().epoch ?? '' };
  const body = snapshotHeaderLine({ cluster, epoch }) + rows.map(snapshotRowLine).join('') + snapshotTrailerLine({ revision: count, lastId: null, rows: count });
  await (await pub.nc.jetstream().views.os(names.bucket)).putBlob({ name: names.object }, gzipSync(body));
}

/** A publisher pass, with its messages delivered to the followers given. */
async function publish(p: { publisher: Publisher; nc: NatsConnection }, ...followers: Array<{ nc: NatsConnection }>): Promise<void> {
  await p.publisher.tick();
  await p.nc.flush();
  for (const f of followers) await f.nc.flush();
}

describe('fan-out', () => {
  it('a node bootstraps from the published snapshot and follows the changes without reading the database', async () => {
    const names = freshNames();
    await setCell('cell-a', [registration('a-1', { ip: '10.1.0.1' }), registration('a-2', { ip: '10.1.0.2' })]);
    const pub = await publisher(names);
    await publish(pub);
    const node = await follower(names);
    await publish(pub, node);
    await node.sync();
    expect(node.instances()).toEqual(await live());

    await setCell('cell-a', [registration('a-1', { ip: '10.1.0.9' }), registration('a-3', { ip: '10.1.0.3' })]);
    await publish(pub, node);
    await node.sync();
    expect(node.instances()).toEqual(await live());
    expect(node.instances().find((i) => i.id === 'a-1')?.ip).toBe('10.1.0.9');
    expect(node.source.mode).toBe('nats');
  });

  it('a gap (messages missed while away) is filled from the stream, in order', async () => {
    const names = freshNames();
    await setCell('cell-b', [registration('b-1', { ip: '10.2.0.1' })]);
    const pub = await publisher(names);
    await publish(pub);
    const node = await follower(names);
    await publish(pub, node);
    await node.sync();
    // The node hears nothing while three changes are published.
    node.nats.close();
    for (let i = 2; i <= 4; i++) {
      await setCell('cell-b', [registration('b-1', { ip: '10.2.0.1' }), registration(`b-${i}`, { ip: `10.2.0.${i}` })]);
      await publish(pub);
    }
    node.nats.listen();
    await node.nc.flush(); // the subscriptions are in place before anything is published
    await publish(pub, node); // a head: the node learns how far behind it is
    await node.sync();
    expect(node.instances()).toEqual(await live());
    expect(node.source.mode).toBe('nats');
  });

  it('a node a message behind finds it from the end of the stream in a few requests, not by searching all of it', async () => {
    const names = freshNames();
    await setCell('cell-u', [registration('u-1', { ip: '10.9.4.1' })]);
    const pub = await publisher(names);
    await publish(pub);
    const node = await follower(names);
    await publish(pub, node);
    await node.sync();
    // 64 changes, each a message of the stream, which the node hears live.
    for (let i = 2; i < 66; i++) {
      await setCell('cell-u', [registration('u-1', { ip: `10.9.4.${i}` })]);
      await publish(pub, node);
    }
    await node.sync();
    // One more while it hears nothing: it must read that one from the stream.
    node.nats.close();
    await setCell('cell-u', [registration('u-1', { ip: '10.9.4.99' })]);
    await publish(pub);
    node.nats.listen();
    await node.nc.flush();
    await publish(pub, node);
    // Every request the node makes is a message it sends.
    const before = node.nc.stats().outMsgs;
    await node.sync();
    const requests = node.nc.stats().outMsgs - before;
    expect(node.instances()).toEqual(await live());
    // Its first JetStream request, the stream's info and two reads from the end (4); a search
    // from the start of the stream's messages took 16.
    expect(requests).toBeLessThanOrEqual(5);
  });

  it('a message that fails its checks, or is of another chain, is refused and counted; the publisher and the node go on', async () => {
    const names = freshNames();
    await setCell('cell-g', [registration('g-1', { ip: '10.7.0.1' })]);
    const pub = await publisher(names);
    await publish(pub);
    const node = await follower(names);
    await publish(pub, node);
    await node.sync();
    // Someone else publishes on the changes subject: not JSON, then a well-formed change of another database.
    const stranger = await natsClient();
    stranger.publish(names.changes, new TextEncoder().encode('{"v":1,'));
    stranger.publish(names.changes, new TextEncoder().encode(JSON.stringify({ v: 1, cluster: 'x', epoch: 'y', from: 3, to: 3, lastId: null, rows: [] })));
    await stranger.flush();
    await setCell('cell-g', [registration('g-1', { ip: '10.7.0.2' })]);
    await publish(pub, node);
    await node.sync();
    expect(node.nats.rejected).toBe(2);
    expect(node.nats.lastRejection).toMatch(/of cluster x, not the head's/);
    expect(node.instances()).toEqual(await live());
    expect(node.source.mode).toBe('nats');
  });

  it('a published snapshot with a line that never ends is refused, not held', async () => {
    const names = freshNames();
    await setCell('cell-k', [registration('k-1', { ip: '10.9.1.1' })]);
    const pub = await publisher(names);
    await publish(pub);
    // The object replaced by one whose second line runs on for 2 MiB.
    const { cluster, epoch } = { cluster: await store.clusterId(), epoch: pub.publisher.status().epoch ?? '' };
    const objects = await pub.nc.jetstream().views.os(names.bucket);
    await objects.putBlob({ name: names.object }, gzipSync(`${JSON.stringify({ v: 1, cluster, epoch })}\n${'x'.repeat(2 * 1024 * 1024)}`));
    const node = await follower(names);
    await publish(pub, node);
    await node.sync();
    expect(node.nats.lastRejection).toMatch(/a line longer than 1048576 bytes/);
    expect(node.source.mode).toBe('fallback');
  });

  it('a published snapshot whose data stops coming is abandoned after a few intervals, and the database read instead', async () => {
    const names = freshNames();
    await setCell('cell-s', [registration('s-1', { ip: '10.9.2.1' })]);
    const pub = await publisher(names);
    await publish(pub);
    // About 5 MiB: dozens of the object store's chunks.
    const rows = 200_000;
    await publishBulkySnapshot(pub, names, rows);

    // The node reaches NATS through a link that is cut as the first row arrives: nothing more
    // comes (no reset: the client would not notice for minutes). What was already on its way is
    // read, a fraction of the object (the server sends only so far ahead of the reader), then the
    // read waits.
    const link = await TcpLink.to(Number(new URL(nats.url).port));
    const node = await follower(names, { sqlUrl: database.url, natsUrl: `nats://127.0.0.1:${link.port}` });
    cleanups.push(() => link.close());
    await publish(pub, node);
    node.nats.onFirstRow = () => link.cut();
    const pass = node.sync();
    await waitFor(() => node.nats.snapshotRows > 0, 10_000, 'the first rows of the published snapshot');
    // Nothing more comes; the node's clock moves on by the bound.
    node.clock.advance(HEAD_MISSES * INTERVAL);
    await pass;
    expect(node.nats.snapshotRows).toBeLessThan(rows);
    expect(node.source.mode).toBe('fallback');
    expect(node.source.reason).toMatch(/no data for 3000 ms; reading the database instead/);
    // The rows the stalled read handed over are dropped: the file is the database's.
    expect(node.instances()).toEqual(await live());
    // Not a bad message: nothing is counted as refused.
    expect(node.nats.rejected).toBe(0);
  });

  it('a published snapshot missing a chunk fails its digest: refused at once, and the database read instead', async () => {
    const names = freshNames();
    await setCell('cell-t', [registration('t-1', { ip: '10.9.3.1' })]);
    const pub = await publisher(names);
    await publish(pub);
    await publishBulkySnapshot(pub, names, 20_000);
    // The object's last chunk deleted from the bucket's stream (the last message is its description).
    const jsm = await pub.nc.jetstreamManager();
    const bucketStream = `OBJ_${names.bucket}`;
    const last = (await jsm.streams.info(bucketStream)).state.last_seq;
    expect((await jsm.streams.getMessage(bucketStream, { seq: last - 1 })).subject).toMatch(/^\$O\..*\.C\./);
    await jsm.streams.deleteMessage(bucketStream, last - 1);

    const node = await follower(names, { sqlUrl: database.url });
    await publish(pub, node);
    // No clock moves: the pass ends on the object's own error.
    await node.sync();
    expect(node.nats.lastRejection).toMatch(/digests do not match/);
    expect(node.nats.rejected).toBe(1);
    expect(node.source.mode).toBe('fallback');
    expect(node.instances()).toEqual(await live());
  });

  it('a gap the stream no longer holds, with no snapshot published, is filled from the database', async () => {
    const names = freshNames();
    await setCell('cell-c', [registration('c-1', { ip: '10.3.0.1' })]);
    const pub = await publisher(names);
    await publish(pub);
    const node = await follower(names, { sqlUrl: database.url });
    await publish(pub, node);
    await node.sync();
    node.nats.close();
    await setCell('cell-c', [registration('c-2', { ip: '10.3.0.2' })]);
    await publish(pub);
    // The stream and the snapshot are lost (an operator purged them).
    const jsm = await pub.nc.jetstreamManager();
    await jsm.streams.purge(names.stream);
    await (await pub.nc.jetstream().views.os(names.bucket)).delete(names.object);
    node.nats.listen();
    await node.nc.flush(); // the subscriptions are in place before anything is published
    await publish(pub, node);
    await node.sync();
    expect(node.source.mode).toBe('fallback');
    expect(node.source.reason).toMatch(/no longer holds the changes/);
    expect(node.instances()).toEqual(await live());
  });

  it('a database restored from an older state: the publisher starts a new epoch, and the node takes its snapshot', async () => {
    const names = freshNames();
    await setCell('cell-h', [registration('h-1', { ip: '10.8.0.1' }), registration('h-2', { ip: '10.8.0.2' })]);
    const pub = await publisher(names);
    await publish(pub);
    const node = await follower(names);
    await publish(pub, node);
    await node.sync();
    const epoch = pub.publisher.status().epoch;
    // The tables are emptied and refilled (a restore from a dump taken before any of these rows).
    await db.query('TRUNCATE cells, presences, presence_revision');
    await setCell('cell-h', [registration('h-3', { ip: '10.8.0.3' })]);
    await publish(pub, node);
    expect(pub.publisher.status().epoch).not.toBe(epoch);
    await node.sync();
    await node.sync();
    // What the restore lost is kept for a TTL (its registrars re-register it), the rest is the database's.
    expect(node.instances().filter((i) => i.id.startsWith('h-'))).toEqual([{ id: 'h-1', ip: '10.8.0.1' }, { id: 'h-2', ip: '10.8.0.2' }, { id: 'h-3', ip: '10.8.0.3' }]);
    expect(node.source.mode).toBe('nats');
  });

  it('a node back on NATS that cannot ask the database whether its revision still holds takes the published snapshot, not the new chain from its old revision', async () => {
    const names = freshNames();
    const ids = (n: { instances: () => Array<{ id: string }> }) => n.instances().map((i) => i.id).filter((id) => id.startsWith('r-'));
    await setCell('cell-r', [registration('r-1', { ip: '10.9.0.1' }), registration('r-2', { ip: '10.9.0.2' })]);
    const pub = await publisher(names);
    await publish(pub);
    const node = await follower(names); // its database is unreachable
    await publish(pub, node);
    await node.sync();
    expect(ids(node)).toEqual(['r-1', 'r-2']);
    // The publisher falls silent: the node leaves NATS for the database (unreachable), and
    // no longer knows which chain its revision belongs to.
    node.clock.advance(3 * INTERVAL + 1);
    await node.sync();
    expect(node.source.mode).toBe('fallback');
    // Meanwhile the database is restored from an older dump: a new chain, its head below the node's revision.
    await db.query('TRUNCATE cells, presences, presence_revision');
    await setCell('cell-r', [registration('r-3', { ip: '10.9.0.3' })]);
    await publish(pub, node);
    await node.sync();
    await node.sync();
    expect(node.source.mode).toBe('nats');
    // The new chain's rows are in service (r-1 and r-2 are carried for a TTL, as after any loss).
    expect(ids(node)).toEqual(['r-1', 'r-2', 'r-3']);
    // And the chain is followed from the snapshot on.
    await setCell('cell-r', [registration('r-3', { ip: '10.9.0.3' }), registration('r-4', { ip: '10.9.0.4' })]);
    await publish(pub, node);
    await node.sync();
    expect(ids(node)).toEqual(['r-1', 'r-2', 'r-3', 'r-4']);
  });

  it('the publisher fails over: another candidate takes the lock after a TTL and goes on with the same chain', async () => {
    const names = freshNames();
    const clock = new ManualClock({ runTimers: false });
    await setCell('cell-d', [registration('d-1', { ip: '10.4.0.1' })]);
    const first = await publisher(names, clock);
    const second = await publisher(names, clock);
    await publish(first);
    await publish(second);
    expect(first.publisher.status().publishing).toBe(true);
    expect(second.publisher.status().publishing).toBe(false);
    const node = await follower(names);
    await publish(first, node);
    await node.sync();
    const epoch = first.publisher.status().epoch;

    // The first publisher dies (it never renews again); a change lands meanwhile.
    await setCell('cell-d', [registration('d-1', { ip: '10.4.0.1' }), registration('d-2', { ip: '10.4.0.2' })]);
    await publish(second);
    expect(second.publisher.status().publishing).toBe(false);
    clock.advance(TTL);
    await publish(second, node);
    expect(second.publisher.status()).toMatchObject({ publishing: true, epoch });
    await node.sync();
    expect(node.instances()).toEqual(await live());
    expect(node.source.mode).toBe('nats');
  });

  it('with NATS down the node syncs from the database, and goes back to NATS when it returns', async () => {
    const names = freshNames();
    await setCell('cell-e', [registration('e-1', { ip: '10.5.0.1' })]);
    const pub = await publisher(names);
    await publish(pub);
    const node = await follower(names, { sqlUrl: database.url });
    await publish(pub, node);
    await node.sync();
    expect(node.source.mode).toBe('nats');

    await nats.kill();
    await setCell('cell-e', [registration('e-1', { ip: '10.5.0.1' }), registration('e-2', { ip: '10.5.0.2' })]);
    // No head for three intervals: the publisher is taken for gone.
    node.clock.advance(3 * INTERVAL + 1);
    await node.sync();
    expect(node.source.mode).toBe('fallback');
    expect(node.instances()).toEqual(await live());

    await nats.restart();
    await waitFor(() => !pub.nc.isClosed() && pub.nc.info !== undefined && node.nc.info !== undefined, 10_000, 'clients reconnected');
    await waitFor(async () => {
      await pub.nc.flush();
      await node.nc.flush();
      return true;
    }, 10_000, 'round trips after the restart');
    await setCell('cell-e', [registration('e-3', { ip: '10.5.0.3' })]);
    await publish(pub, node);
    await node.sync();
    expect(node.source.mode).toBe('nats');
    expect(node.instances()).toEqual(await live());
  });

  it('a node that loses NATS wakes its syncer at once, not at its next interval', async () => {
    const clock = new ManualClock({ runTimers: false });
    const fanout = startFanout({
      settings: { natsUrl: nats.url, prefix: `pdns-test-${process.pid}-${++prefixSeq}`, publisher: false, snapshotEvery: 1000, snapshotSlots: 4, owner: crypto.randomUUID() },
      sql: new SqlChangeSource(new PresenceStore(db), { listen: false }), intervalMs: INTERVAL, lockTtlMs: TTL, clock, logger: silentLogger,
    });
    cleanups.push(() => fanout.stop());
    await waitFor(() => fanout.status().connected, 10_000, 'the fan-out connected to NATS');
    // Nothing is published on these names: only losing NATS can wake it. The clock never moves.
    let woken = 0;
    await fanout.source.subscribe(() => woken++);
    await nats.kill();
    try {
      await waitFor(() => woken > 0, 10_000, 'the syncer woken by the disconnect');
      expect(fanout.status().connected).toBe(false);
    } finally {
      await nats.restart();
    }
  });

  it('a node that has just connected waits for the publisher\'s head before it reads the database', async () => {
    const names = freshNames();
    const node = await follower(names); // its database is unreachable: any read of it fails the pass
    await node.sync();
    expect(node.source.mode).toBe('nats');
    node.clock.advance(3 * INTERVAL);
    await node.sync();
    expect(node.source.mode).toBe('fallback');
    expect(node.source.reason).toMatch(/no publisher heard/);
  });

  it('nodes falling back to the database take a snapshot only while one of the slots is free', async () => {
    const names = freshNames();
    await setCell('cell-f', [registration('f-1', { ip: '10.6.0.1' }), registration('f-2', { ip: '10.6.0.2' })]);
    // No publisher on these names: every node falls back.
    const nodes = await Promise.all(Array.from({ length: 6 }, () => follower(names, { sqlUrl: database.url, slots: 2 })));
    // Both slots are taken (as by two nodes in the middle of a snapshot).
    const holder = openPgDb(database.url, silentLogger);
    cleanups.push(() => holder.close());
    const taken = signal();
    const release = signal();
    const held = holder.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1, 0), pg_advisory_xact_lock($1, 1)', [0x70647373]);
      taken.resolve();
      await release.promise;
    });
    await taken.promise;
    // Connected, but no publisher heard for three intervals: they give up waiting for one.
    for (const n of nodes) n.clock.advance(3 * INTERVAL);
    const passes = nodes.map((n) => n.sync());
    await waitFor(() => nodes.every((n) => n.source.slotWaits === 1), 10_000, 'every node waiting for a slot');
    release.resolve();
    await held;
    await Promise.all(passes);
    for (const n of nodes) expect(n.instances()).toEqual(await live());
  });
});

describe('fan-out with the fallback on a replica', () => {
  let primary: PgServer;
  let replica: PgServer;
  let primaryDb: Db;

  beforeAll(async () => {
    primary = await PgServer.create();
    primaryDb = openPgDb(primary.url, silentLogger);
    await migrate(primaryDb);
    replica = await PgServer.replicaOf(primary);
  }, 120_000);

  afterAll(async () => {
    await primaryDb.close();
    await replica.destroy();
    await primary.destroy();
  });

  const headOf = async (server: PgServer) => Number((await server.sql<{ revision: string }>('SELECT revision FROM presence_revision')).at(0)?.revision);

  it('a node that leaves NATS for a replica still replaying keeps its revision and waits for it, rather than re-reading an older state', async () => {
    const names = freshNames();
    const primaryStore = new PresenceStore(primaryDb);
    await setCell('cell-r', [registration('r-1', { ip: '10.9.0.1' })], primaryStore);
    const pub = await publisher(names, undefined, undefined, primaryStore);
    await publish(pub);
    const node = await follower(names, { sqlUrl: replica.url });
    await publish(pub, node);
    await node.sync();
    await waitFor(async () => (await headOf(replica)) === (await headOf(primary)), 10_000, 'the replica caught up');

    // The replica stops replaying; the next change reaches the node through NATS only.
    await replica.pauseReplay();
    await setCell('cell-r', [registration('r-1', { ip: '10.9.0.1' }), registration('r-2', { ip: '10.9.0.2' })], primaryStore);
    await publish(pub, node);
    await node.sync();
    const revision = await headOf(primary);
    expect(syncedTopology(node.file).version).toBe(revision);
    expect(await headOf(replica)).toBeLessThan(revision);

    // No head for three intervals: the node reads the replica, which is behind it.
    node.clock.advance(3 * INTERVAL + 1);
    await node.sync();
    expect(node.source.mode).toBe('fallback');
    expect(syncedTopology(node.file).version).toBe(revision);
    expect(node.source.reason).toMatch(/behind revision \d+, which NATS gave/);
    // And so for every pass of the grace.
    for (let pass = 1; pass < BEHIND_GRACE_PASSES; pass++) await node.sync();
    expect(syncedTopology(node.file).version).toBe(revision);
    expect(node.instances()).toEqual(await live(primaryDb));

    // Replayed again: the node goes on from its revision with what the replica has since.
    await replica.resumeReplay();
    await setCell('cell-r', [registration('r-3', { ip: '10.9.0.3' })], primaryStore);
    const head = await headOf(primary);
    await waitFor(async () => (await headOf(replica)) === head, 10_000, 'the replica replaying again');
    await node.sync();
    expect(syncedTopology(node.file).version).toBe(head);
    expect(node.instances()).toEqual(await live(primaryDb));
    expect(node.source.reason).not.toMatch(/behind/);
  });
});
