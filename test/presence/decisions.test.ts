// The pure decisions with explicit time: backoff, heartbeat jitter, the locket expiry
// rule, the mass-expiry guard, and when the syncer needs a snapshot.
import { describe, expect, it } from 'vitest';
import {
  ExpiryTracker, LockWatch, MassExpiryGuard, backoffDelay, heartbeatDelay, planSync, snapshotCause, type CellObservation,
} from '../../src/presence/decisions.ts';

const head = (revision: number, purgedBelow = 0) => ({ revision, purgedBelow });
const cell = (cellId: string, heartbeatIndex: number, ttlMs = 3000, owner = 'o'): CellObservation => ({ cellId, owner, heartbeatIndex, ttlMs });

describe('backoff and jitter', () => {
  it('doubles per failure up to the cap, jittered within the upper half', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, 100, 10_000, () => 1))).toEqual([100, 200, 400, 800]);
    expect(backoffDelay(20, 100, 5000, () => 1)).toBe(5000);
    expect(backoffDelay(20, 100, 5000, () => 0)).toBe(2500);
  });

  it('heartbeats at most every ttl/3 and at least at 80 % of it', () => {
    expect(heartbeatDelay(15_000, () => 1)).toBe(5000);
    expect(heartbeatDelay(15_000, () => 0)).toBe(4000);
  });
});

describe('expiry by observed non-renewal', () => {
  it('expires a cell only after its pair stayed unchanged for its TTL on the observer clock', () => {
    const tracker = new ExpiryTracker();
    expect(tracker.observe([cell('a', 1), cell('b', 1)], 0)).toEqual([]);
    expect(tracker.observe([cell('a', 2), cell('b', 1)], 2999)).toEqual([]);
    expect(tracker.observe([cell('a', 2), cell('b', 1)], 3000).map((c) => c.cellId)).toEqual(['b']);
    // a beat at 2999: it has until 5999.
    expect(tracker.observe([cell('a', 2)], 5998)).toEqual([]);
    expect(tracker.observe([cell('a', 2)], 5999).map((c) => c.cellId)).toEqual(['a']);
  });

  it('a new owner of the cell counts as a change', () => {
    const tracker = new ExpiryTracker();
    tracker.observe([cell('a', 5, 3000, 'old')], 0);
    expect(tracker.observe([cell('a', 5, 3000, 'new')], 3000)).toEqual([]);
  });

  it('gives every cell a fresh full TTL after a reset (start, lock gain, database back)', () => {
    const tracker = new ExpiryTracker();
    tracker.observe([cell('a', 1)], 0);
    tracker.reset();
    expect(tracker.observe([cell('a', 1)], 10_000)).toEqual([]);
    expect(tracker.observe([cell('a', 1)], 12_999)).toEqual([]);
    expect(tracker.observe([cell('a', 1)], 13_000)).toHaveLength(1);
  });
});

describe('mass-expiry guard', () => {
  it('lets a single dead cell go even in a two-cell fleet', () => {
    const guard = new MassExpiryGuard<CellObservation>(0.3, 10);
    expect(guard.decide([cell('a', 1)], 2, 0)).toEqual({ release: [cell('a', 1)], held: [], tripped: false });
  });

  it('holds more than one cell and more than the fraction, counts one trip, releases after hold × TTL', () => {
    const guard = new MassExpiryGuard<CellObservation>(0.3, 10);
    const silent = [cell('a', 1), cell('b', 1), cell('c', 1)];
    const first = guard.decide(silent, 8, 0);
    expect(first).toMatchObject({ release: [], tripped: true });
    expect(first.held).toHaveLength(3);
    expect(guard.decide(silent, 8, 29_999)).toMatchObject({ release: [], tripped: false });
    expect(guard.decide(silent, 10, 30_000).release.map((c) => c.cellId)).toEqual(['a', 'b', 'c']);
  });

  it('does not trip within the fraction, and an operator release lets the held cells go at once', () => {
    const guard = new MassExpiryGuard<CellObservation>(0.3, 10);
    expect(guard.decide([cell('a', 1), cell('b', 1)], 10, 0).release).toHaveLength(2);
    expect(guard.decide([cell('a', 1), cell('b', 1), cell('c', 1)], 4, 0).release).toEqual([]);
    guard.releaseOnce();
    expect(guard.decide([cell('a', 1), cell('b', 1), cell('c', 1)], 4, 1).release).toHaveLength(3);
    expect(guard.holding).toEqual([]);
  });

  it('counts cells let go within one TTL with the ones due now: two of four silent a pass apart trip it', () => {
    const guard = new MassExpiryGuard<CellObservation>(0.3, 10);
    // Killed at once, their last heartbeats a heartbeat period apart: due one pass after the other.
    expect(guard.decide([cell('a', 1)], 4, 0).release).toEqual([cell('a', 1)]);
    const second = guard.decide([cell('b', 1)], 3, 700);
    expect(second).toMatchObject({ release: [], tripped: true });
    // The held cell stays held for its whole hold, though the first left the window long ago.
    expect(guard.decide([cell('b', 1)], 3, 700 + 29_999).release).toEqual([]);
    expect(guard.decide([cell('b', 1)], 3, 700 + 30_000).release).toEqual([cell('b', 1)]);
    // Deaths more than a TTL apart are separate: each goes.
    expect(guard.decide([cell('c', 1)], 2, 40_000).release).toEqual([cell('c', 1)]);
    expect(guard.decide([cell('d', 1)], 2, 43_000).release).toEqual([cell('d', 1)]);
  });

  it('restarts the hold for a cell that came back and went silent again', () => {
    const guard = new MassExpiryGuard<CellObservation>(0.3, 10);
    guard.decide([cell('a', 1), cell('b', 1), cell('c', 1)], 4, 0);
    guard.decide([cell('b', 1), cell('c', 1), cell('d', 1)], 4, 20_000);
    const later = guard.decide([cell('a', 1), cell('b', 1), cell('c', 1), cell('d', 1)], 4, 30_000);
    expect(later.release.map((c) => c.cellId)).toEqual(['b', 'c']);
    expect(later.held.map((c) => c.cellId)).toEqual(['a', 'd']);
  });
});

describe('lock watch', () => {
  it('a lock is expired only once its (index, id) stayed the same for its TTL', () => {
    const watch = new LockWatch();
    const holder = { owner: 'x', modifiedIndex: 4, modifiedId: 'u1', ttlMs: 3000 };
    expect(watch.expired(holder, 100)).toBe(false);
    expect(watch.expired(holder, 3099)).toBe(false);
    expect(watch.expired({ ...holder, modifiedIndex: 5 }, 3099)).toBe(false);
    expect(watch.expired({ ...holder, modifiedIndex: 5 }, 6098)).toBe(false);
    expect(watch.expired({ ...holder, modifiedIndex: 5 }, 6099)).toBe(true);
  });
});

describe('sync planning', () => {
  it('snapshots when fresh, when the revision goes backwards, or when the last applied row vanished', () => {
    expect(planSync({ revision: null, id: null }, head(10), undefined)).toBe('snapshot');
    expect(planSync({ revision: 10, id: 'x' }, head(4), undefined)).toBe('snapshot');
    expect(planSync({ revision: 10, id: 'x' }, head(12), null)).toBe('snapshot');
    expect(planSync({ revision: 10, id: 'x' }, head(12), 3)).toBe('snapshot');
  });

  it('snapshots when tombstones it has not read may have been purged', () => {
    expect(planSync({ revision: 10, id: 'x' }, head(500, 11), 10)).toBe('snapshot');
    expect(planSync({ revision: 10, id: 'x' }, head(500, 10), 10)).toBe('incremental');
  });

  it('tells rows lost (they may come back) from rows deleted behind purged tombstones', () => {
    expect(snapshotCause({ revision: null, id: null }, head(10), undefined)).toBe('first');
    expect(snapshotCause({ revision: 10, id: 'x' }, head(4), undefined)).toBe('lost');
    expect(snapshotCause({ revision: 10, id: 'x' }, head(12), null)).toBe('lost');
    expect(snapshotCause({ revision: 10, id: 'x' }, head(12), 3)).toBe('lost');
    expect(snapshotCause({ revision: 10, id: 'x' }, head(500, 11), 10)).toBe('behind');
    expect(snapshotCause({ revision: 10, id: 'x' }, head(12), 10)).toBeNull();
  });

  it('reads incrementally when ahead and idles when caught up', () => {
    expect(planSync({ revision: 10, id: 'x' }, head(12), 10)).toBe('incremental');
    expect(planSync({ revision: 10, id: 'x' }, head(12), 11)).toBe('incremental');
    expect(planSync({ revision: 10, id: 'x' }, head(10), 10)).toBe('idle');
    expect(planSync({ revision: 0, id: null }, head(3), undefined)).toBe('incremental');
  });
});
