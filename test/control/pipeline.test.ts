// Registrar → PostgreSQL → reaper/syncer → topology file, on a real PostgreSQL (and the
// embedded PGlite), with a manual clock: the test runs each heartbeat, reaper pass and
// sync pass itself, so TTLs are exact and nothing sleeps.
import { mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from '../../src/admin/metrics.ts';
import type { Db } from '../../src/presence/db.ts';
import { openPgDb } from '../../src/presence/pg-db.ts';
import { startEmbeddedDb } from '../../src/presence/embedded-db.ts';
import { Reaper } from '../../src/presence/reaper.ts';
import { Registrar } from '../../src/presence/registrar.ts';
import { migrate } from '../../src/presence/schema.ts';
import { SqlChangeSource } from '../../src/presence/change-source.ts';
import { PresenceStore } from '../../src/presence/store.ts';
import { startControlPlane, type RunningControlPlane } from '../../src/control/index.ts';
import { parseIp } from '../../src/util/ip.ts';
import { freePort, testDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { required } from '../helpers/required.ts';
import { syncedTopology } from '../helpers/topology.ts';
import { TestSource, registration, silentLogger, unposted } from '../presence/fixtures.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

const TTL = 3000;
let database: TestDatabase;
let db: Db;
let store: PresenceStore;
/** What the setup started, stopped in reverse: only what it got to start if it failed halfway. */
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  database = await testDatabase();
  cleanups.push(() => database.drop());
  db = openPgDb(database.url, silentLogger);
  cleanups.push(() => db.close());
  await migrate(db);
  store = new PresenceStore(db);
});

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function node(cellId: string, clock: ManualClock, metrics = new Registry(), s = store) {
  const source = new TestSource();
  const registrar = new Registrar({ store: s, source, cellId, address: null, ttlMs: TTL, clock, logger: silentLogger, metrics, random: () => 1 });
  // Started so registration changes reach it; its timers never fire (the test kicks it).
  registrar.start();
  return { source, registrar, metrics };
}

const planes: RunningControlPlane[] = [];
afterEach(async () => {
  await Promise.all(planes.splice(0).map((p) => p.stop()));
});

/** A control plane syncing into a file of its own, as in the topology worker; its passes are run by hand. */
async function syncer(clock: ManualClock, s = store) {
  const file = join(mkdtempSync(join(tmpdir(), 'presence-sync-')), 'topology.json');
  const plane = await startControlPlane({
    file, aliasesDir: join(file, '..', 'aliases.d'), domains: [], logger: silentLogger, post: unposted,
    sync: { source: new SqlChangeSource(s, { listen: false }), intervalMs: 1000, ttlMs: TTL, maxDropFraction: 0.3, guardHold: 10, clock, pageSize: 2, scheduled: false },
  });
  planes.push(plane);
  const read = () => syncedTopology(file);
  const ids = () => read().instances.map((i) => i.id).sort();
  return { sync: required(plane.syncer, 'the syncer of a syncing control plane'), file, read, ids, state: plane.state };
}

function reaper(clock: ManualClock, metrics = new Registry(), owner = crypto.randomUUID()) {
  return new Reaper({ store, owner, lockTtlMs: TTL, maxExpireFraction: 0.3, guardHold: 10, clock, logger: silentLogger, metrics });
}

async function truncateAll(): Promise<void> {
  await db.query('TRUNCATE cells, presences, presence_revision');
}

describe('registrar → syncer → file', () => {
  it('publishes registered instances with the revision as the file version, and drops removed ones', async () => {
    await truncateAll();
    const clock = new ManualClock({ start: 0, runTimers: false });
    const a = node('cell-a', clock);
    const s = await syncer(clock);
    a.source.set([registration('p-1', { ip: '10.0.0.1' }), registration('p-2', { ip: '10.0.0.2' }), registration('p-3', { ip: '10.0.0.3' })]);
    await a.registrar.kick();
    await s.sync.tick();
    expect(s.ids()).toEqual(['p-1', 'p-2', 'p-3']);
    expect(s.read().version).toBe((await store.head()).revision);
    expect(s.read().instances[0]).toMatchObject({ cellId: 'cell-a', health: 'running', group: 'web', deployment: 'cf' });

    // Changes arrive incrementally, in pages of two.
    a.source.set([registration('p-1', { ip: '10.0.0.9' }), registration('p-3', { ip: '10.0.0.3' }), registration('p-4', { ip: '10.0.0.4' }), registration('p-5', { ip: '10.0.0.5' })]);
    await a.registrar.kick();
    await s.sync.tick();
    expect(s.ids()).toEqual(['p-1', 'p-3', 'p-4', 'p-5']);
    expect(s.read().instances.find((i) => i.id === 'p-1')?.ip).toBe('10.0.0.9');
    expect(s.read().version).toBe((await store.head()).revision);
    await a.registrar.stop();
  });

  it('a fresh node with an empty database still writes a (empty) file, so DNS becomes ready', async () => {
    await truncateAll();
    const s = await syncer(new ManualClock({ start: 0, runTimers: false }));
    await s.sync.tick();
    expect(existsSync(s.file)).toBe(true);
    expect(s.ids()).toEqual([]);
  });
});

describe('reaper', () => {
  it('expires a silent cell after exactly its TTL, and only then; a beating cell stays', async () => {
    await truncateAll();
    const clock = new ManualClock({ start: 0, runTimers: false });
    const a = node('cell-a', clock);
    const b = node('cell-b', clock);
    a.source.set([registration('r-a1')]);
    b.source.set([registration('r-b1'), registration('r-b2')]);
    await Promise.all([a.registrar.kick(), b.registrar.kick()]);
    const metrics = new Registry();
    const r = reaper(clock, metrics);
    const s = await syncer(clock);
    await r.tick();
    expect(r.status().holder).toBe(true);

    clock.advance(TTL - 1);
    await a.registrar.kick();
    await r.tick();
    await s.sync.tick();
    expect(s.ids()).toEqual(['r-a1', 'r-b1', 'r-b2']);

    clock.advance(1);
    await r.tick();
    await s.sync.tick();
    expect(s.ids()).toEqual(['r-a1']);
    expect(await metrics.value('presence_dns_cells_expired_total')).toBe(1);

    // The expired cell's registrar notices within one heartbeat and comes back.
    await b.registrar.kick();
    await s.sync.tick();
    expect(s.ids()).toEqual(['r-a1', 'r-b1', 'r-b2']);
    await r.stop();
  });

  it('a reaper that gains the lock gives every cell a fresh TTL; the lock moves only after observed non-renewal', async () => {
    await truncateAll();
    await db.query('DELETE FROM locks');
    const clock = new ManualClock({ start: 0, runTimers: false });
    const a = node('cell-a', clock);
    a.source.set([registration('l-a1')]);
    await a.registrar.kick();
    const first = reaper(clock);
    const second = reaper(clock);
    await first.tick();
    await second.tick();
    expect([first.status().holder, second.status().holder]).toEqual([true, false]);

    // The holder dies without releasing (no more renewals). The other takes over only
    // once it has seen the lock unchanged for its TTL.
    clock.advance(TTL - 1);
    await second.tick();
    expect(second.status().holder).toBe(false);
    clock.advance(1);
    await second.tick();
    expect(second.status().holder).toBe(true);

    // cell-a has been silent for a whole TTL, but the new holder never observed it: fresh TTL.
    const s = await syncer(clock);
    await second.tick();
    await s.sync.tick();
    expect(s.ids()).toEqual(['l-a1']);
    clock.advance(TTL);
    await second.tick();
    await s.sync.tick();
    expect(s.ids()).toEqual([]);
    await second.stop();
    expect((await db.query('SELECT * FROM locks')).rows).toEqual([]);
  });

  it('the mass-expiry guard holds when most cells go silent at once, then lets go after guard_hold × TTL', async () => {
    await truncateAll();
    const clock = new ManualClock({ start: 0, runTimers: false });
    const nodes = ['g-1', 'g-2', 'g-3', 'g-4'].map((id) => node(id, clock));
    nodes.forEach((n, i) => n.source.set([registration(`g-i${i}`)]));
    await Promise.all(nodes.map((n) => n.registrar.kick()));
    const metrics = new Registry();
    const r = reaper(clock, metrics);
    const s = await syncer(clock);
    await r.tick();
    clock.advance(TTL);
    await nodes[0].registrar.kick();
    await r.tick();
    await s.sync.tick();
    expect(s.ids()).toHaveLength(4);
    expect(await metrics.value('presence_dns_expiry_guard_trips_total')).toBe(1);
    expect(r.status().guardHolding.sort()).toEqual(['g-2', 'g-3', 'g-4']);

    clock.advance(10 * TTL - 1);
    await nodes[0].registrar.kick();
    await r.tick();
    await s.sync.tick();
    expect(s.ids()).toHaveLength(4);
    clock.advance(1);
    await nodes[0].registrar.kick();
    await r.tick();
    await s.sync.tick();
    expect(s.ids()).toEqual(['g-i0']);
    expect(await metrics.value('presence_dns_expiry_guard_trips_total')).toBe(1);
    await r.stop();
  });

  it('an operator can release the guard at once', async () => {
    await truncateAll();
    const clock = new ManualClock({ start: 0, runTimers: false });
    const nodes = ['o-1', 'o-2', 'o-3'].map((id) => node(id, clock));
    nodes.forEach((n, i) => n.source.set([registration(`o-i${i}`)]));
    await Promise.all(nodes.map((n) => n.registrar.kick()));
    const r = reaper(clock);
    await r.tick();
    clock.advance(TTL);
    await r.tick();
    expect(r.status().guardHolding).toHaveLength(3);
    r.releaseGuard();
    await r.tick();
    const s = await syncer(clock);
    await s.sync.tick();
    expect(s.ids()).toEqual([]);
    await r.stop();
  });
});

describe('tombstone retention', () => {
  it('the reaper purges old tombstones; a syncer that was further behind takes a snapshot and misses no deletion', async () => {
    await truncateAll();
    await db.query('DELETE FROM locks');
    const clock = new ManualClock({ start: 0, runTimers: false });
    const a = node('ret-1', clock);
    a.source.set([registration('ret-keep'), registration('ret-gone-1'), registration('ret-gone-2')]);
    await a.registrar.kick();
    const behind = await syncer(clock);
    await behind.sync.tick();
    const current = await syncer(clock);
    a.source.set([registration('ret-keep')]);
    await a.registrar.kick();
    await current.sync.tick();
    // More revisions than the retention, so both tombstones fall out of it.
    for (let i = 0; i < 4; i++) {
      a.source.set([registration('ret-keep', { index: i + 1 })]);
      await a.registrar.kick();
    }
    const r = new Reaper({ store, owner: a.registrar.owner, lockTtlMs: TTL, maxExpireFraction: 0.3, guardHold: 10, tombstoneRetention: 2, clock, logger: silentLogger, metrics: new Registry() });
    await r.tick();
    await r.stop();
    expect((await db.query("SELECT id FROM presences WHERE id LIKE 'ret-gone%'")).rows).toEqual([]);
    await behind.sync.tick();
    await current.sync.tick();
    expect(behind.ids()).toEqual(['ret-keep']);
    expect(current.ids()).toEqual(['ret-keep']);
    expect(behind.read().instances[0].index).toBe(4);
  });
});

describe('data loss', () => {
  it('an emptied database never empties a topology with records, until an operator releases the guard', async () => {
    await truncateAll();
    const clock = new ManualClock({ start: 0, runTimers: false });
    const lone = node('z-1', clock);
    lone.source.set([registration('z-i1')]);
    await lone.registrar.kick();
    await lone.registrar.stop();
    const s = await syncer(clock);
    await s.sync.tick();
    expect(s.ids()).toEqual(['z-i1']);
    // Nobody re-registers (the only cell is gone for good, or the database was wiped).
    await truncateAll();
    await s.sync.tick();
    clock.advance(100 * TTL);
    await s.sync.tick();
    expect(s.ids()).toEqual(['z-i1']);
    s.sync.releaseGuard();
    await s.sync.tick();
    expect(s.ids()).toEqual([]);
  });

  it('tables emptied: the file keeps every instance until the registrars re-register within one heartbeat', async () => {
    await truncateAll();
    const clock = new ManualClock({ start: 0, runTimers: false });
    const nodes = ['t-1', 't-2', 't-3'].map((id) => node(id, clock));
    nodes.forEach((n, i) => n.source.set([registration(`t-i${i}a`), registration(`t-i${i}b`)]));
    await Promise.all(nodes.map((n) => n.registrar.kick()));
    const s = await syncer(clock);
    await s.sync.tick();
    const all = s.ids();
    expect(all).toHaveLength(6);

    await truncateAll();
    await s.sync.tick();
    expect(s.ids()).toEqual(all);
    // One registrar back: still most cells missing, so the file stays as it was.
    await nodes[0].registrar.kick();
    await s.sync.tick();
    expect(s.ids()).toEqual(all);
    await Promise.all(nodes.slice(1).map((n) => n.registrar.kick()));
    await s.sync.tick();
    expect(s.ids()).toEqual(all);
    expect(s.read().version).toBe((await store.head()).revision);
    for (const n of nodes) await n.registrar.stop();
  });

  it('tables emptied and one cell never comes back: its instances stay a full TTL, then go (one cell is within the guard)', async () => {
    await truncateAll();
    const clock = new ManualClock({ start: 0, runTimers: false });
    const live = node('e-live', clock);
    const dead = node('e-dead', clock);
    live.source.set([registration('e-l1')]);
    dead.source.set([registration('e-d1'), registration('e-d2')]);
    await Promise.all([live.registrar.kick(), dead.registrar.kick()]);
    const s = await syncer(clock);
    await s.sync.tick();
    await truncateAll();
    await live.registrar.kick();
    await s.sync.tick();
    expect(s.ids()).toEqual(['e-d1', 'e-d2', 'e-l1']);
    clock.advance(TTL - 1);
    await s.sync.tick();
    expect(s.ids()).toEqual(['e-d1', 'e-d2', 'e-l1']);
    clock.advance(1);
    await s.sync.tick();
    expect(s.ids()).toEqual(['e-l1']);
    expect(s.read().version).toBe((await store.head()).revision);
  });

  it('only the instance rows deleted: the next heartbeat notices the missing rows and rewrites them', async () => {
    await truncateAll();
    const clock = new ManualClock({ start: 0, runTimers: false });
    const a = node('d-1', clock);
    a.source.set([registration('d-x'), registration('d-y')]);
    await a.registrar.kick();
    await db.query('DELETE FROM presences');
    await a.registrar.kick();
    const s = await syncer(clock);
    await s.sync.tick();
    expect(s.ids()).toEqual(['d-x', 'd-y']);
  });

  it('a failover loses the last write of a live cell: that instance stays until re-registered, or a TTL passes', async () => {
    await truncateAll();
    const clock = new ManualClock({ start: 0, runTimers: false });
    const a = node('f-1', clock);
    a.source.set([registration('f-x'), registration('f-y')]);
    await a.registrar.kick();
    const s = await syncer(clock);
    await s.sync.tick();
    // The replica promoted missed the last transaction: the row we applied last is gone,
    // with no tombstone, while its cell is alive and still has other instances.
    const last = (await db.query<{ id: string }>('SELECT id FROM presences ORDER BY revision DESC LIMIT 1')).rows[0].id;
    await db.query('DELETE FROM presences WHERE id = $1', [last]);
    await s.sync.tick();
    expect(s.ids()).toEqual(['f-x', 'f-y']);
    // Its registrar writes it again within a heartbeat; then a TTL later it is still there.
    await a.registrar.kick();
    await s.sync.tick();
    clock.advance(TTL);
    await s.sync.tick();
    expect(s.ids()).toEqual(['f-x', 'f-y']);

    // Lost again, and this time nobody writes it back: it goes after exactly a TTL.
    const again = (await db.query<{ id: string }>('SELECT id FROM presences ORDER BY revision DESC LIMIT 1')).rows[0].id;
    await db.query('DELETE FROM presences WHERE id = $1', [again]);
    await s.sync.tick();
    clock.advance(TTL - 1);
    await s.sync.tick();
    expect(s.ids()).toEqual(['f-x', 'f-y']);
    clock.advance(1);
    await s.sync.tick();
    expect(s.ids()).toEqual(['f-x', 'f-y'].filter((id) => id !== again));
    await a.registrar.stop();
  });
});

describe('database down', () => {
  it('the registrar retries with capped exponential backoff; the syncer keeps the file and reports stale', async () => {
    const port = await freePort();
    const downDb = openPgDb(`postgres://postgres:postgres@127.0.0.1:${port}/postgres`, silentLogger);
    const down = new PresenceStore(downDb);
    const clock = new ManualClock({ start: 0, runTimers: false });
    const metrics = new Registry();
    const a = node('down-1', clock, metrics, down);
    a.source.set([registration('down-x')]);
    const seen: Array<[number, number]> = [];
    for (let i = 0; i < 8; i++) {
      await a.registrar.kick();
      seen.push([await metrics.value('presence_dns_registrar_errors_total'), required(clock.scheduled.at(-1), 'the next try scheduled')]);
    }
    // After n consecutive failures the next try waits 250 ms doubled n-1 times, capped at
    // ttl/3 = 1000 ms (random pinned to 1: no jitter).
    for (const [failures, delay] of seen) expect(delay).toBe(Math.min(250 * 2 ** (failures - 1), 1000));
    expect(seen.map(([failures]) => failures)).toContain(2);
    expect(seen.at(-1)?.[0]).toBeGreaterThanOrEqual(8);
    await a.registrar.stop();

    const s = await syncer(clock, down);
    await s.sync.tick();
    clock.advance(5000);
    await s.sync.tick();
    expect(existsSync(s.file)).toBe(false);
    expect(s.sync.status()).toMatchObject({ stale: true, staleSeconds: 5, dbUp: false });
    await downDb.close();
  });
});

describe('embedded PGlite', () => {
  it('runs the same pipeline on the embedded database', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-pglite-'));
    const embedded = startEmbeddedDb({ dir: join(dir, 'db') }, silentLogger);
    const lite = embedded.db;
    await migrate(lite);
    await migrate(lite);
    const liteStore = new PresenceStore(lite);
    const clock = new ManualClock({ start: 0, runTimers: false });
    const a = node('lite-1', clock, new Registry(), liteStore);
    const liteY = required(parseIp('fd00::7'), 'fd00::7 as an address').canonical;
    a.source.set([registration('lite-x', { ip: '10.7.0.1' }), registration('lite-y', { ip: liteY })]);
    await a.registrar.kick();
    const s = await syncer(clock, liteStore);
    await s.sync.tick();
    expect(s.read().instances.map((i) => [i.id, i.ip, i.family])).toEqual([['lite-x', '10.7.0.1', 4], ['lite-y', liteY, 6]]);
    const r = new Reaper({ store: liteStore, owner: a.registrar.owner, lockTtlMs: TTL, maxExpireFraction: 0.3, guardHold: 10, clock, logger: silentLogger, metrics: new Registry() });
    await r.tick();
    clock.advance(TTL);
    await r.tick();
    await s.sync.tick();
    expect(s.ids()).toEqual([]);
    await r.stop();
    await lite.close();
    await embedded.stop();
  });
});
