// The presence tables on a real PostgreSQL: migrations, writes only on change, numeric
// ids, heartbeats and owners, locket locks, compare-and-set expiry, and the revision
// counter that never lets a polling reader skip a committed change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/presence/db.ts';
import { openPgDb } from '../../src/presence/pg-db.ts';
import { LockWatch } from '../../src/presence/decisions.ts';
import { migrate } from '../../src/presence/schema.ts';
import { PresenceStore } from '../../src/presence/store.ts';
import { testDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { required } from '../helpers/required.ts';
import { registration, silentLogger } from './fixtures.ts';

let database: TestDatabase;
const opened: Db[] = [];
/** What the setup started, stopped in reverse: only what it got to start if it failed halfway. */
const cleanups: Array<() => Promise<unknown>> = [];

function connect(): PresenceStore {
  const db = openPgDb(database.url, silentLogger);
  opened.push(db);
  return new PresenceStore(db);
}

let store: PresenceStore;

beforeAll(async () => {
  database = await testDatabase();
  cleanups.push(() => database.drop());
  cleanups.push(() => Promise.all(opened.map((db) => db.close())));
  // Daemons starting together each run the migrations; the advisory lock serialises them.
  const dbs = [1, 2, 3].map(() => openPgDb(database.url, silentLogger));
  opened.push(...dbs);
  await Promise.all(dbs.map((db) => migrate(db)));
  await migrate(dbs[0]);
  store = new PresenceStore(dbs[0]);
});

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('instance rows', () => {
  it('writes a row only when the instance really changes, and tombstones removed ones', async () => {
    await store.registerCell({ cellId: 'c-rows', owner: crypto.randomUUID(), address: null, ttlMs: 3000 });
    const a = registration('rows-a', { ip: '10.1.0.1' });
    const b = registration('rows-b', { ip: '10.1.0.2', index: 1 });
    const start = (await store.head()).revision;

    expect(await store.writeInstances('c-rows', [a, b])).toMatchObject({ written: 2, tombstoned: 0, revision: start + 2 });
    expect(await store.writeInstances('c-rows', [a, b])).toMatchObject({ written: 0, tombstoned: 0, revision: start + 2 });
    expect((await store.head()).revision).toBe(start + 2);

    await store.writeInstances('c-rows', [a, { ...b, health: 'failing' }]);
    const changed = await store.changesSince(start + 2, 100);
    expect(changed.map((r) => [r.id, r.health, r.revision])).toEqual([['rows-b', 'failing', start + 3]]);

    await store.writeInstances('c-rows', [{ ...b, health: 'failing' }]);
    const removed = await store.changesSince(start + 3, 100);
    expect(removed.map((r) => [r.id, r.deleted, r.revision])).toEqual([['rows-a', true, start + 4]]);

    // What a sync pass asks first, in one round trip: the head and one row's revision.
    expect(await store.headAndRow('rows-b')).toEqual({ head: await store.head(), rowRevision: start + 3 });
    expect(await store.headAndRow('no-such-row')).toEqual({ head: await store.head(), rowRevision: null });
    expect((await store.snapshot()).rows.map((r) => r.id)).not.toContain('rows-a');
  });

  it('allocates numeric ids on first use of a name, keeps them stable, and respects pins', async () => {
    await store.writeInstances('c-ids', [
      registration('ids-1', { group: 'api', az: 'z9', network: 'net9' }),
      registration('ids-2', { group: 'api', az: 'z9', network: 'net9', numId: 50, groupIds: [77] }),
    ]);
    await store.writeInstances('c-ids-2', [registration('ids-3', { group: 'api', az: 'z9', network: 'net9', deployment: 'other' })]);
    const rows = new Map((await store.snapshot()).rows.map((r) => [r.id, r]));
    const one = required(rows.get('ids-1'), 'the row of ids-1');
    const three = required(rows.get('ids-3'), 'the row of ids-3');
    expect(one.groupIds).toEqual(three.groupIds);
    expect(one.azId).toBe(three.azId);
    expect(one.networkId).toBe(three.networkId);
    expect(rows.get('ids-2')).toMatchObject({ numId: 50, groupIds: [77] });
    // num_id is per deployment: the first instance of "other" gets 1.
    expect(three.numId).toBe(1);
    // Rewriting does not reallocate.
    await store.writeInstances('c-ids', [registration('ids-1', { group: 'api', az: 'z9', network: 'net9', ip: '10.9.9.9' })]);
    const again = required((await store.snapshot()).rows.find((r) => r.id === 'ids-1'), 'the row of ids-1 rewritten');
    expect([again.numId, again.groupIds, again.azId, again.networkId]).toEqual([one.numId, one.groupIds, one.azId, one.networkId]);
  });
});

describe('numeric ids in one write', () => {
  it('never hands a new instance the number another instance of the same write pins', async () => {
    await store.writeInstances('c-pins', [
      registration('pins-new', { deployment: 'pinned' }),
      registration('pins-fixed', { deployment: 'pinned', numId: 1 }),
    ]);
    const rows = new Map((await store.snapshot()).rows.map((r) => [r.id, r]));
    expect(rows.get('pins-fixed')).toMatchObject({ numId: 1 });
    const { numId } = required(rows.get('pins-new'), 'the row of pins-new');
    expect(numId).not.toBe(1);
    expect(numId).not.toBeNull();
  });
});

describe('cells and heartbeats', () => {
  it('bumps the heartbeat of its own cell and reports how many rows it has; a new owner takes the cell', async () => {
    const owner = crypto.randomUUID();
    await store.registerCell({ cellId: 'c-beat', owner, address: '10.0.0.9', ttlMs: 3000 });
    await store.writeInstances('c-beat', [registration('beat-1'), registration('beat-2')]);
    const before = required((await store.listCells()).find((c) => c.cellId === 'c-beat'), 'cell c-beat');
    expect(await store.heartbeat('c-beat', owner)).toEqual({ liveInstances: 2 });
    const after = required((await store.listCells()).find((c) => c.cellId === 'c-beat'), 'cell c-beat after a heartbeat');
    expect(after.heartbeatIndex).toBe(before.heartbeatIndex + 1);
    expect(after.ttlMs).toBe(3000);

    const { previousOwner } = await store.registerCell({ cellId: 'c-beat', owner: crypto.randomUUID(), address: null, ttlMs: 3000 });
    expect(previousOwner).toBe(owner);
    expect(await store.heartbeat('c-beat', owner)).toBeNull();
  });

  it('expires a cell only if its (owner, heartbeat_index) is still the one observed', async () => {
    const owner = crypto.randomUUID();
    await store.registerCell({ cellId: 'c-cas', owner, address: null, ttlMs: 3000 });
    await store.writeInstances('c-cas', [registration('cas-1'), registration('cas-2')]);
    const seen = required((await store.listCells()).find((c) => c.cellId === 'c-cas'), 'cell c-cas');
    await store.heartbeat('c-cas', owner);
    expect(await store.expireCell(seen)).toBeNull();
    expect((await store.snapshot()).rows.filter((r) => r.cellId === 'c-cas')).toHaveLength(2);

    const now = required((await store.listCells()).find((c) => c.cellId === 'c-cas'), 'cell c-cas after a heartbeat');
    expect(await store.expireCell(now)).toBe(2);
    expect((await store.snapshot()).rows.filter((r) => r.cellId === 'c-cas')).toHaveLength(0);
    expect((await store.listCells()).map((c) => c.cellId)).not.toContain('c-cas');
  });
});

describe('leaving and listing cells', () => {
  it('deregisters a cell it still owns at once, tombstoning its instances; never a cell another process claimed', async () => {
    const owner = crypto.randomUUID();
    await store.registerCell({ cellId: 'c-leave', owner, address: null, ttlMs: 3000 });
    await store.writeInstances('c-leave', [registration('leave-1'), registration('leave-2')]);
    const head = (await store.head()).revision;
    expect(await store.deregisterCell('c-leave', crypto.randomUUID())).toBeNull();
    expect(await store.deregisterCell('c-leave', owner)).toBe(2);
    const changes = await store.changesSince(head, 100);
    expect(changes.map((r) => [r.id, r.deleted])).toEqual([['leave-1', true], ['leave-2', true]]);
    expect((await store.listCells()).map((c) => c.cellId)).not.toContain('c-leave');
    expect(await store.deregisterCell('c-leave', owner)).toBeNull();
  });

  it('lists cells with their heartbeat age by the database clock, live instances and the reaper holder', async () => {
    const owner = crypto.randomUUID();
    await store.registerCell({ cellId: 'c-member', owner, address: '10.0.0.7', ttlMs: 6000 });
    await store.writeInstances('c-member', [registration('member-1')]);
    await store.acquireLock('reaper', owner, 6000, () => true);
    await store.db.query("UPDATE cells SET heartbeat_at = now() - interval '40 seconds' WHERE cell_id = 'c-member'");
    const aged = required((await store.cellMembers()).find((c) => c.cellId === 'c-member'), 'member c-member');
    expect(aged).toMatchObject({ address: '10.0.0.7', ttlSeconds: 6, instances: 1, reaperHolder: true });
    expect(aged.heartbeatAgeSeconds).toBeGreaterThanOrEqual(40);
    await store.heartbeat('c-member', owner);
    const fresh = required((await store.cellMembers()).find((c) => c.cellId === 'c-member'), 'member c-member after a heartbeat');
    expect(fresh.heartbeatAgeSeconds).toBeLessThan(40);
    expect(fresh.heartbeats).toBe(aged.heartbeats + 1);
    await store.releaseLock('reaper', owner);
    expect((await store.cellMembers()).find((c) => c.cellId === 'c-member')).toMatchObject({ reaperHolder: false });
  });
});

describe('locks (locket semantics)', () => {
  it('acquires, renews, collides with a live owner, and is taken over only after observed non-renewal', async () => {
    const watch = new LockWatch();
    let now = 0;
    const expired = (h: Parameters<LockWatch['expired']>[0]) => watch.expired(h, now);
    expect(await store.acquireLock('test-lock', 'a', 3000, expired)).toBe('acquired');
    expect(await store.acquireLock('test-lock', 'a', 3000, expired)).toBe('renewed');
    expect(await store.acquireLock('test-lock', 'b', 3000, expired)).toBe('collision');
    now = 2000;
    await store.acquireLock('test-lock', 'a', 3000, expired);
    now = 4000;
    // Renewed at 2000, so b's observation restarts: not expired yet.
    expect(await store.acquireLock('test-lock', 'b', 3000, expired)).toBe('collision');
    now = 7100;
    expect(await store.acquireLock('test-lock', 'b', 3000, expired)).toBe('acquired');
    expect(await store.acquireLock('test-lock', 'a', 3000, () => false)).toBe('collision');
    expect(await store.releaseLock('test-lock', 'a')).toBe(false);
    expect(await store.releaseLock('test-lock', 'b')).toBe(true);
    expect(await store.acquireLock('test-lock', 'a', 3000, () => false)).toBe('acquired');
  });
});

describe('revisions', () => {
  it('a reader polling revision > last never misses a revision committed by concurrent writers', async () => {
    const writers = Array.from({ length: 8 }, () => connect());
    const reader = connect();
    const start = (await store.head()).revision;
    const perWriter = 25;
    const seen: number[] = [];
    const gaps: string[] = [];
    let last = start;
    let writing = true;
    // A function of its own (not run in place): `writing` changes while it awaits.
    const pollChanges = async () => {
      while (writing || last < (await reader.head()).revision) {
        const page = await reader.changesSince(last, 7);
        for (const row of page) {
          // Writers only insert, so every revision stays on its row: a jump is a skipped commit.
          if (row.revision !== last + 1) gaps.push(`${last} → ${row.revision}`);
          seen.push(row.revision);
          last = row.revision;
        }
      }
    };
    const poll = pollChanges();
    await Promise.all(writers.map(async (w, i) => {
      const regs = [];
      for (let n = 0; n < perWriter; n++) {
        regs.push(registration(`rev-${i}-${n}`, { ip: `10.200.${i}.${n + 1}` }));
        await w.writeInstances(`c-rev-${i}`, [...regs]);
      }
    }));
    writing = false;
    await poll;
    const total = writers.length * perWriter;
    expect(gaps).toEqual([]);
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => start + 1 + i));
  });

  it('concurrent updates and removals of known instances (one statement each) still commit every revision in order', async () => {
    const writers = Array.from({ length: 6 }, () => connect());
    const cells = writers.map((_, i) => Array.from({ length: 10 }, (_, n) => registration(`upd-${i}-${n}`, { ip: `10.201.${i}.${n + 1}` })));
    await Promise.all(writers.map((w, i) => w.writeInstances(`c-upd-${i}`, cells[i])));
    const start = (await store.head()).revision;
    // Each round: one more instance fails, and the last one still there goes.
    await Promise.all(writers.map(async (w, i) => {
      for (let round = 0; round < 4; round++) {
        const kept = cells[i].slice(0, 10 - round - 1).map((r, n) => (n === round ? { ...r, health: 'failing' as const } : r));
        cells[i] = kept;
        const result = await w.writeInstances(`c-upd-${i}`, kept);
        expect(result).toMatchObject({ written: 1, tombstoned: 1 });
      }
    }));
    const changes = await store.changesSince(start, 1000);
    expect(changes.map((r) => r.revision)).toEqual(Array.from({ length: 6 * 4 * 2 }, (_, k) => start + 1 + k));
    const live = new Map((await store.snapshot()).rows.filter((r) => r.cellId.startsWith('c-upd-')).map((r) => [r.id, r.health]));
    expect(live).toEqual(new Map(cells.flat().map((r) => [r.id, r.health])));
  });

  it('a write that changes nothing, and a heartbeat, never wait for a writer holding the revision row', async () => {
    const owner = crypto.randomUUID();
    await store.registerCell({ cellId: 'c-nowait', owner, address: null, ttlMs: 3000 });
    const regs = [registration('nowait-1'), registration('nowait-2')];
    await store.writeInstances('c-nowait', regs);
    const other = connect();
    // A writer stuck mid-transaction with the lock (its client stalled): with the lock
    // awaited, both calls below would run into the pool's 5 s query timeout and throw.
    await other.db.transaction(async (tx) => {
      await tx.query('SELECT revision FROM presence_revision WHERE id = 1 FOR UPDATE');
      expect(await store.writeInstances('c-nowait', regs)).toMatchObject({ written: 0, tombstoned: 0 });
      expect(await store.heartbeat('c-nowait', owner)).toEqual({ liveInstances: 2 });
    });
  });
});
