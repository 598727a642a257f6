// The pure decisions of the presence pipeline: retry backoff, heartbeat jitter, the
// locket expiry rule (by observed non-renewal on the observer's monotonic clock), the
// mass-expiry guard, and when a syncer must take a full snapshot. No I/O here; every
// function takes the time it needs, so tests drive it exactly.

/** Capped exponential backoff with full jitter in the upper half: 2^n × base, at most cap. */
export function backoffDelay(failures: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, failures - 1));
  return ceiling / 2 + (ceiling / 2) * random();
}

/** A heartbeat period of ttl/3, jittered down by up to 20 % so cells do not beat in step. */
export function heartbeatDelay(ttlMs: number, random: () => number = Math.random): number {
  return (ttlMs / 3) * (0.8 + 0.2 * random());
}

export interface CellObservation {
  cellId: string;
  owner: string;
  heartbeatIndex: number;
  ttlMs: number;
}

/**
 * Remembers, per cell, the last (owner, heartbeat_index) seen and when it changed. A cell
 * whose pair has not changed for its TTL is due to expire. Time is only ever the
 * observer's own clock: a cell first seen (or seen after `reset`) gets a full TTL.
 */
export class ExpiryTracker {
  private readonly seen = new Map<string, { owner: string; heartbeatIndex: number; changedAt: number }>();

  /** Forgets everything: after a start, a lock gain or a database outage. */
  reset(): void {
    this.seen.clear();
  }

  /** Records this pass's view of the cells; returns those silent for their TTL. */
  observe(cells: CellObservation[], now: number): CellObservation[] {
    const present = new Set<string>();
    const due: CellObservation[] = [];
    for (const cell of cells) {
      present.add(cell.cellId);
      const last = this.seen.get(cell.cellId);
      if (last?.owner !== cell.owner || last.heartbeatIndex !== cell.heartbeatIndex) {
        this.seen.set(cell.cellId, { owner: cell.owner, heartbeatIndex: cell.heartbeatIndex, changedAt: now });
      } else if (now - last.changedAt >= cell.ttlMs) {
        due.push(cell);
      }
    }
    for (const id of this.seen.keys()) if (!present.has(id)) this.seen.delete(id);
    return due;
  }
}

export interface GuardDecision<T> {
  /** What may go now. */
  release: T[];
  /** What the guard holds back. */
  held: T[];
  /** True on the pass where the guard starts holding (count a trip once, not per pass). */
  tripped: boolean;
}

/**
 * The mass-expiry guard: losing more than one cell AND more than `maxFraction` of the
 * live cells together is far more likely a partition than a mass death, so nothing is
 * let go — until the same cells have stayed gone for `holdFactor` × their TTL, or an
 * operator says so. "Together" is within one TTL, not one pass: cells that fall silent
 * at the same moment sent their last heartbeats up to a heartbeat period apart, so they
 * come due in different passes, and a per-pass count would let a small fleet lose half
 * its cells one pass after the other. So the cells let go within the last TTL count
 * with the ones due now.
 */
export class MassExpiryGuard<T extends { cellId: string; ttlMs: number }> {
  private readonly holdingSince = new Map<string, number>();
  /** Cells let go in the normal way, and when: they count with later candidates for one TTL. */
  private readonly released = new Map<string, { at: number; ttlMs: number }>();
  private operatorRelease = false;

  constructor(private readonly maxFraction: number, private readonly holdFactor: number) {}

  get holding(): string[] {
    return [...this.holdingSince.keys()];
  }

  /** The operator's command: the next decision lets everything pending go. */
  releaseOnce(): void {
    this.operatorRelease = true;
  }

  /** `liveCells`: the cells there are now, candidates included (the ones let go before are not). */
  decide(candidates: T[], liveCells: number, now: number): GuardDecision<T> {
    for (const [id, r] of this.released) if (now - r.at >= r.ttlMs) this.released.delete(id);
    const wasHolding = this.holdingSince.size > 0;
    const ids = new Set(candidates.map((c) => c.cellId));
    let earlier = 0;
    for (const id of this.released.keys()) if (!ids.has(id)) earlier++;
    const together = candidates.length + earlier;
    // Cells already held stay held for their hold, whatever else has come and gone since.
    const trips = (candidates.length > 0 && together > 1 && together > this.maxFraction * (liveCells + earlier))
      || candidates.some((c) => this.holdingSince.has(c.cellId));
    if (!trips || this.operatorRelease) {
      // What the operator lets go is the operator's call: it does not count against what follows.
      if (!this.operatorRelease) for (const c of candidates) this.released.set(c.cellId, { at: now, ttlMs: c.ttlMs });
      this.operatorRelease = false;
      this.holdingSince.clear();
      return { release: candidates, held: [], tripped: false };
    }
    for (const id of this.holdingSince.keys()) if (!ids.has(id)) this.holdingSince.delete(id);
    const release: T[] = [];
    const held: T[] = [];
    for (const candidate of candidates) {
      const since = this.holdingSince.get(candidate.cellId) ?? now;
      this.holdingSince.set(candidate.cellId, since);
      if (now - since >= this.holdFactor * candidate.ttlMs) release.push(candidate);
      else held.push(candidate);
    }
    for (const c of release) this.holdingSince.delete(c.cellId);
    return { release, held, tripped: !wasHolding && held.length > 0 };
  }
}

export interface LockHolder {
  owner: string;
  modifiedIndex: number;
  modifiedId: string;
  ttlMs: number;
}

/**
 * The locket rule for a lock held by someone else: it is expired once its
 * (modified_index, modified_id) has not changed for its TTL, measured on our clock
 * from the moment we first saw that pair.
 */
export class LockWatch {
  private last: { owner: string; modifiedIndex: number; modifiedId: string; since: number } | null = null;

  expired(holder: LockHolder, now: number): boolean {
    const last = this.last;
    if (last?.owner !== holder.owner || last.modifiedIndex !== holder.modifiedIndex || last.modifiedId !== holder.modifiedId) {
      this.last = { ...holder, since: now };
      return false;
    }
    return now - last.since >= holder.ttlMs;
  }

  reset(): void {
    this.last = null;
  }
}

export interface SyncPosition {
  /** Highest revision applied; null before the first snapshot. */
  revision: number | null;
  /** The row that carried `revision`, to notice it vanished (tables emptied). */
  id: string | null;
}

/**
 * What a sync pass does, given the database's head (newest revision, and below which
 * tombstones were purged) and the current revision of the row we last applied
 * (undefined: not looked up, null: the row is gone).
 */
export function planSync(position: SyncPosition, head: { revision: number; purgedBelow: number }, lastRowRevision: number | null | undefined): 'snapshot' | 'incremental' | 'idle' {
  const { revision } = position;
  if (revision === null || snapshotCause(position, head, lastRowRevision) !== null) return 'snapshot';
  return head.revision > revision ? 'incremental' : 'idle';
}

/**
 * Why a snapshot is due, or null: the first one; fallen behind the tombstones kept (rows
 * missing from it were deleted); or rows lost — the revision went backwards, or the row
 * we last applied vanished or grew older (tables emptied or restored, a failover to a
 * replica that missed the last transactions): rows missing from it may come back.
 */
export function snapshotCause(position: SyncPosition, head: { revision: number; purgedBelow: number }, lastRowRevision: number | null | undefined): 'first' | 'behind' | 'lost' | null {
  if (position.revision === null) return 'first';
  if (head.revision < position.revision) return 'lost';
  // Deletions we have not read may be gone with the purged tombstones.
  if (position.revision < head.purgedBelow) return 'behind';
  // A row's revision only grows and only purged tombstones are deleted: a vanished
  // row, or one now older than what we applied, means the tables were emptied or restored.
  if (position.id !== null && (lastRowRevision === null || (lastRowRevision !== undefined && lastRowRevision < position.revision))) return 'lost';
  return null;
}
