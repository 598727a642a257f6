// The change source a node's syncer reads when the fan-out is on: NATS while it can
// answer, the database when it cannot (NATS down, no publisher heard, a gap the stream no
// longer covers, no snapshot published). In the database, a snapshot waits for one of a
// few fleet-wide slots (advisory locks), so a fleet whose NATS is down never takes more
// than `snapshot_slots` snapshots from the database at once; incremental reads are a
// page of `revision > last` each, cheap on a replica or through PgBouncer. A replica may
// not yet have replayed the revision NATS brought a node to: a database behind the node's
// position, just after leaving NATS, is waited for a few passes before it is taken for a
// restore (whose snapshot would take away what the replica has yet to replay).
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import { backoffDelay } from '../presence/decisions.ts';
import type { ChangeSource, SnapshotResult, SqlChangeSource, SyncPlan } from '../presence/change-source.ts';
import type { SyncPosition } from '../presence/decisions.ts';
import type { PresenceRow } from '../presence/store.ts';
import { FanoutUnavailable, HEAD_MISSES, type NatsChangeSource } from './follower.ts';

export interface FallbackOptions {
  /** Null until NATS is reached (see attach). */
  nats: NatsChangeSource | null;
  sql: SqlChangeSource;
  /** Snapshots taken from the database at once, fleet-wide (`sync.snapshot_slots`). */
  snapshotSlots: number;
  /** The sync interval: the first database read after leaving NATS is spread over one. */
  intervalMs: number;
  clock: Clock;
  logger: Logger;
  random?: () => number;
}

export type FanoutMode = 'nats' | 'fallback';

/** Waits between tries for a snapshot slot: from 250 ms, doubling, at most 5 s, jittered. */
const SLOT_RETRY_BASE_MS = 250;
const SLOT_RETRY_CAP_MS = 5000;
/** Passes a database behind the position NATS gave is waited for (a replica replaying), before it counts as lost rows. */
export const BEHIND_GRACE_PASSES = 10;

export class FallbackSource implements ChangeSource {
  private current: FanoutMode = 'nats';
  /** Why the last pass read the database, for status and logs. */
  reason: string | null = null;
  /** Snapshots that waited for a slot, and how many tries that took in all. */
  slotWaits = 0;

  private nats: NatsChangeSource | null;
  private wake: (() => void) | null = null;
  /** Entered the fallback since the last read of the database (see spread). */
  private spreadDue = true;
  /**
   * Passes the database was behind the position since this node left NATS; null once it
   * has caught up with it (from then on the position is the database's own).
   */
  private behindPasses: number | null = 0;

  private readonly startedAt: number;

  constructor(private readonly options: FallbackOptions) {
    this.nats = options.nats;
    this.startedAt = options.clock.now();
  }

  /** NATS reached: the next pass reads it. */
  attach(nats: NatsChangeSource): void {
    this.nats = nats;
    nats.setWake(this.wake);
  }

  get kind(): string {
    return this.current === 'nats' ? 'nats' : 'sql';
  }

  get mode(): FanoutMode {
    return this.current;
  }

  /**
   * Just started or just connected: NATS and the publisher's head are on their way, and
   * reading the database now would make a fleet that starts together stampede it.
   */
  private awaiting(): boolean {
    if (this.nats) return this.nats.awaitingHead();
    return this.options.clock.now() - this.startedAt < HEAD_MISSES * this.options.intervalMs;
  }

  async clusterId(): Promise<string> {
    const { nats } = this;
    if (nats?.usable()) return nats.clusterId();
    if (this.awaiting()) throw new FanoutUnavailable('waiting for NATS and the publisher\'s first head');
    this.use('fallback', this.fallbackReason());
    await this.spread();
    return this.options.sql.clusterId();
  }

  private fallbackReason(): string {
    return this.nats ? 'no publisher heard on NATS, or not connected' : 'NATS not reached yet';
  }

  async plan(position: SyncPosition): Promise<SyncPlan> {
    const { nats } = this;
    const { sql } = this.options;
    if (nats?.usable()) {
      try {
        // A position read from the database belongs to no chain this node knows: the
        // database says once whether it still holds (two small queries), and the chain
        // adopted is the one announced before it answered (one announced meanwhile makes the
        // next plan take its snapshot). When the database cannot answer, the published
        // snapshot is taken: following a chain from a revision of another history (a
        // restore, a failover behind) would miss its changes.
        if (position.revision !== null && !nats.epochKnown) {
          const epoch = nats.headEpoch;
          const checked = await sql.plan(position).catch(() => null);
          if (checked === null || checked.kind === 'snapshot' || epoch === null) {
            this.use('nats', null);
            return checked?.kind === 'snapshot' ? checked : { kind: 'snapshot', cause: 'lost' };
          }
          nats.adoptEpoch(epoch);
        }
        const plan = await nats.plan(position);
        this.use('nats', null);
        return plan;
      } catch (err) {
        if (!(err instanceof FanoutUnavailable)) throw err;
        this.use('fallback', err.message);
      }
    } else if (this.awaiting()) {
      // Just connected: the publisher's head is on its way; what is in service stays meanwhile.
      return { kind: 'idle' };
    } else {
      this.use('fallback', this.fallbackReason());
    }
    await this.spread();
    return this.awaitReplay(await sql.plan(position), position);
  }

  /**
   * A database behind the position NATS gave (a replica that has not replayed it yet) is
   * waited for, BEHIND_GRACE_PASSES passes at most, with what is in service kept: its
   * snapshot would take away the changes it has yet to replay. Past that, or once it has
   * caught up, a database behind the position has lost rows (a restore) and is re-read.
   */
  private awaitReplay(plan: SyncPlan, position: SyncPosition): SyncPlan {
    if (this.behindPasses === null) return plan;
    if (plan.kind === 'snapshot' && plan.databaseBehind && this.behindPasses < BEHIND_GRACE_PASSES) {
      this.behindPasses++;
      this.reason = `the database is behind revision ${position.revision}, which NATS gave (a replica replaying?): waiting for it (pass ${this.behindPasses} of ${BEHIND_GRACE_PASSES}) before a snapshot`;
      return { kind: 'idle' };
    }
    this.behindPasses = null;
    return plan;
  }

  /** The first read of the database after leaving NATS waits a random part of an interval: a fleet that loses NATS together does not arrive together. */
  private async spread(): Promise<void> {
    if (!this.spreadDue) return;
    this.spreadDue = false;
    const { clock, random = Math.random, intervalMs } = this.options;
    await new Promise<void>((resolve) => clock.after(random() * intervalMs, resolve));
  }

  async changesSince(revision: number, limit: number): Promise<PresenceRow[]> {
    if (this.current === 'nats' && this.nats) {
      try {
        return await this.nats.changesSince(revision, limit);
      } catch (err) {
        if (!(err instanceof FanoutUnavailable)) throw err;
        this.use('fallback', err.message);
      }
    }
    return this.options.sql.changesSince(revision, limit);
  }

  async snapshot(onRow: (row: PresenceRow) => void, restart: () => void): Promise<SnapshotResult> {
    if (this.current === 'nats' && this.nats) {
      const read = { handed: false };
      try {
        return await this.nats.snapshot((row) => {
          read.handed = true;
          onRow(row);
        });
      } catch (err) {
        if (!(err instanceof FanoutUnavailable)) throw err;
        this.use('fallback', err.message);
        // What the published snapshot handed over before it failed is not the database's.
        if (read.handed) restart();
      }
    }
    return this.sqlSnapshot(onRow);
  }

  /** A snapshot from the database once a slot is free. */
  private async sqlSnapshot(onRow: (row: PresenceRow) => void): Promise<SnapshotResult> {
    const { sql, snapshotSlots, clock, random } = this.options;
    for (let tries = 1; ; tries++) {
      const snap = await sql.store.snapshot(onRow, { count: snapshotSlots });
      if (snap) return { revision: snap.revision, lastId: snap.lastId };
      if (tries === 1) this.slotWaits++;
      await new Promise<void>((resolve) => clock.after(backoffDelay(tries, SLOT_RETRY_BASE_MS, SLOT_RETRY_CAP_MS, random), resolve));
    }
  }

  /** Runs the syncer's next pass now (NATS was lost: the pass goes to the database without waiting out an interval). */
  wakeSyncer(): void {
    this.wake?.();
  }

  /** Wakes on every change message; the database is polled (through a pooler or on a replica LISTEN would not work). */
  subscribe(wake: () => void): Promise<() => Promise<void>> {
    this.wake = wake;
    this.nats?.setWake(wake);
    return Promise.resolve(() => {
      this.wake = null;
      this.nats?.setWake(null);
      return Promise.resolve();
    });
  }

  private use(mode: FanoutMode, reason: string | null): void {
    if (mode !== this.current) {
      if (mode === 'fallback') this.options.logger.warn({ reason }, 'the fan-out cannot answer; syncing from the database meanwhile');
      else this.options.logger.info('syncing from the fan-out (NATS) again');
      // Positions read from the database belong to no epoch the fan-out knows.
      if (mode === 'fallback') {
        this.nats?.forgetEpoch();
        this.spreadDue = true;
        this.behindPasses = 0;
      }
    }
    this.current = mode;
    this.reason = reason;
  }
}
