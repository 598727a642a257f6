// The reaper: one node at a time (it holds the SQL lock `reaper`) expires cells whose
// heartbeat stopped. Time is only ever this process's monotonic clock; every cell gets a
// fresh full TTL when the reaper starts, gains the lock or sees the database come back,
// and the mass-expiry guard holds back a pass that would take out too many cells at once.
import type { Registry } from '../admin/metrics.ts';
import type { Logger } from '../log.ts';
import type { Clock } from '../clock.ts';
import { errorMessage } from '../util/error-message.ts';
import { ExpiryTracker, LockWatch, MassExpiryGuard, type CellObservation } from './decisions.ts';
import { REAPER_LOCK, type PresenceStore } from './store.ts';
import { PassLoop } from './loop.ts';

export { REAPER_LOCK };
/** How often the holder purges old tombstones. */
const PURGE_INTERVAL_MS = 60_000;

export interface ReaperOptions {
  store: PresenceStore;
  owner: string;
  lockTtlMs: number;
  maxExpireFraction: number;
  guardHold: number;
  /** Tombstones are kept for this many revisions (default 100,000), then purged. */
  tombstoneRetention?: number;
  clock: Clock;
  logger: Logger;
  metrics: Registry;
  random?: () => number;
}

export interface ReaperStatus {
  holder: boolean;
  guardHolding: string[];
}

export class Reaper {
  private readonly tracker = new ExpiryTracker();
  private readonly guard: MassExpiryGuard<CellObservation>;
  private readonly lockWatch = new LockWatch();
  private holder = false;
  private dbLost = false;
  private lastPurge: number | null = null;
  private readonly loop: PassLoop;
  private readonly expiredCells;
  private readonly guardTrips;

  constructor(private readonly options: ReaperOptions) {
    this.loop = new PassLoop(options.clock, async () => {
      await this.pass();
      // A candidate that does not hold the lock looks again about twice per TTL, not every second:
      // a fleet with many candidates does not try the lock on the database N times a second.
      return this.holder || this.dbLost ? this.intervalMs : (options.lockTtlMs / 2) * (0.8 + 0.4 * (options.random ?? Math.random)());
    }, { name: 'reaper' });
    this.guard = new MassExpiryGuard(options.maxExpireFraction, options.guardHold);
    this.expiredCells = options.metrics.counter('presence_dns_cells_expired_total', 'Cells expired by the reaper (their instances tombstoned).');
    this.guardTrips = options.metrics.counter('presence_dns_expiry_guard_trips_total', 'Reaper passes where the mass-expiry guard held back expiries.');
    options.metrics.gauge('presence_dns_reaper_holder', '1 while this node holds the reaper lock.', { collect: () => (this.holder ? 1 : 0) });
  }

  /** Pass period: renews the lock well inside its TTL and checks cells at least every second. */
  get intervalMs(): number {
    return Math.min(this.options.lockTtlMs / 3, 1000);
  }

  status(): ReaperStatus {
    return { holder: this.holder, guardHolding: this.guard.holding };
  }

  /** The operator's override: the next pass expires what the guard is holding. */
  releaseGuard(): void {
    this.guard.releaseOnce();
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
    if (this.holder) {
      await this.options.store.releaseLock(REAPER_LOCK, this.options.owner).catch((err: unknown) => {
        this.options.logger.warn({ err: errorMessage(err) }, 'could not release the reaper lock; it expires by its TTL');
      });
      this.holder = false;
    }
  }

  /** One pass; passes never overlap. */
  tick(): Promise<void> {
    return this.loop.kick();
  }

  private async pass(): Promise<void> {
    const { store, owner, lockTtlMs, clock, logger } = this.options;
    try {
      const lock = await store.acquireLock(REAPER_LOCK, owner, lockTtlMs, (holder) => this.lockWatch.expired(holder, clock.now()));
      if (lock === 'collision') {
        if (this.holder) logger.warn('lost the reaper lock to another node');
        this.holder = false;
        this.dbLost = false;
        return;
      }
      if (lock === 'acquired' || this.dbLost || !this.holder) {
        // Nobody could observe heartbeats until now: every cell starts a full TTL.
        this.tracker.reset();
        this.lockWatch.reset();
        if (lock === 'acquired') logger.info('holding the reaper lock');
      }
      this.holder = true;
      this.dbLost = false;
      await this.reap();
      await this.purge();
    } catch (err) {
      if (!this.dbLost) logger.warn({ err: (err as Error).message }, 'reaper cannot reach the database; expiry paused');
      this.dbLost = true;
    }
  }

  private async purge(): Promise<void> {
    const now = this.options.clock.now();
    if (this.lastPurge !== null && now - this.lastPurge < PURGE_INTERVAL_MS) return;
    this.lastPurge = now;
    const purged = await this.options.store.purgeTombstones(this.options.tombstoneRetention ?? 100_000);
    if (purged) this.options.logger.info({ purged }, 'old tombstones purged');
  }

  private async reap(): Promise<void> {
    const { store, clock, logger } = this.options;
    const cells = await store.listCells();
    const now = clock.now();
    const due = this.tracker.observe(cells, now);
    const decision = this.guard.decide(due, cells.length, now);
    if (decision.tripped) {
      this.guardTrips.inc();
      logger.error({ silent: decision.held.map((c) => c.cellId), liveCells: cells.length, maxFraction: this.options.maxExpireFraction },
        'mass-expiry guard: too many cells went silent at once; expiring none (likely a partition). Release with POST /v1/reaper/release-guard');
    }
    for (const cell of decision.release) {
      const tombstoned = await store.expireCell(cell);
      if (tombstoned === null) continue;
      this.expiredCells.inc();
      logger.warn({ cellId: cell.cellId, instances: tombstoned, ttlMs: cell.ttlMs }, 'cell expired: no heartbeat for its TTL');
    }
  }
}
