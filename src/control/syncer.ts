// The syncer: keeps this node's topology equal to the live presences. It runs in the
// topology worker (the control plane). Every interval (or earlier when its source has news)
// it asks its change source (src/presence/change-source.ts: the database, or the fan-out
// over NATS) for the changes after the revision it applied and hands them on as one delta —
// O(changes), whatever the topology's size. A fresh node, or one whose source says rows
// were lost (the revision went backwards, its last row vanished), takes a consistent
// snapshot, compiled into a new image; instances a snapshot drops without a tombstone stay
// for a TTL (their registrars re-register within a heartbeat), and then only as far as the
// mass-expiry guard allows; an empty snapshot never replaces a topology that has records
// (a database that was never filled, or one emptied) until an operator says so. When the
// source is unreachable nothing changes and staleness grows. It writes only into a
// topology it owns (see `refusal`).
import type { Logger } from '../log.ts';
import type { Clock } from '../clock.ts';
import { withDerived } from '../image/fields.ts';
import { sameInstance, type Instance } from '../image/instance.ts';
import { instanceName, type TopologyDelta, type TopologyView } from '../image/view.ts';
import type { ChangeSource, SnapshotCause } from '../presence/change-source.ts';
import { MassExpiryGuard, type SyncPosition } from '../presence/decisions.ts';
import { PassLoop } from '../presence/loop.ts';
import type { SyncStatus } from './protocol.ts';
import type { PresenceRecord, PresenceRow } from '../presence/store.ts';

/**
 * What the syncer reads and changes of a topology: the control plane's TopologyView, or a
 * view that only counts (the fleet simulator's nodes, bench/fleet-cells.ts).
 */
export interface SyncView {
  readonly version: number;
  /** The last delta applied to it. */
  readonly seq: number;
  readonly recordCount: number;
  withId(id: string): Instance[];
  cells(): Set<string | null>;
  instances(): Iterable<Instance>;
  apply(delta: TopologyDelta): unknown;
}

/** A whole topology being read (a snapshot), compiled by the sink as it comes. */
export interface SnapshotBuilder<V extends SyncView = TopologyView> {
  /** Adds an instance; why it was skipped, or null. */
  add(instance: Instance): string | null;
  finish(version: number): V;
}

/** Where the syncer's changes go: the topology state of the control plane. */
export interface TopologySink<V extends SyncView = TopologyView> {
  readonly current: V | null;
  apply(version: number, removes: string[], adds: Instance[]): void;
  snapshot(): SnapshotBuilder<V>;
  /** Puts a snapshot's view (with the changes applied to it since) in service. */
  replaceView(view: V): void;
}

export interface SyncerOptions<V extends SyncView = TopologyView> {
  source: ChangeSource;
  sink: TopologySink<V>;
  intervalMs: number;
  /** The cells' TTL: how long the guard holds a big drop before it lets it through. */
  ttlMs: number;
  maxDropFraction: number;
  guardHold: number;
  clock: Clock;
  logger: Logger;
  /**
   * Why the syncer must not change the topology (it was written by someone else), or
   * null when it may; asked before every pass, with this database's cluster id once it
   * is known (null before: a file anyone else wrote is refused without the database).
   */
  refusal: (cluster: string | null) => string | null;
  /** Called before the first change the syncer makes: it owns the topology from then on. */
  claim: (cluster: string) => void;
  pageSize?: number;
}

/** A snapshot waiting for the guard's (or a TTL's) consent, kept current with later changes. */
interface PendingSnapshot<V extends SyncView> {
  view: V;
  since: number;
  /** Rows may have been lost (not deleted), so what the snapshot lacks may come back. */
  lost: boolean;
}

export function toInstance(r: PresenceRecord): Instance {
  return withDerived(r);
}

export class Syncer<V extends SyncView = TopologyView> {
  private position: SyncPosition = { revision: null, id: null };
  private pending: PendingSnapshot<V> | null = null;
  private readonly guard: MassExpiryGuard<{ cellId: string; ttlMs: number }>;
  private lastSuccess: number;
  private readonly loop: PassLoop;
  private unlisten: (() => Promise<void>) | null = null;
  private cluster: string | null = null;
  private refused: string | null = null;
  private emptyRelease = false;
  /** Holding an empty snapshot back (logged once). */
  private heldEmpty = false;
  /** Instances in service that a snapshot lacked (lost rows), kept until re-registered or a TTL passes. */
  private readonly carried = new Map<string, Instance>();
  private carriedSince = 0;
  private dbUp: boolean | null = null;
  /** Sync pass durations (s) not yet reported, and guard trips since start. */
  readonly durations: number[] = [];
  guardTrips = 0;

  constructor(private readonly options: SyncerOptions<V>) {
    this.loop = new PassLoop(options.clock, async () => {
      await this.pass();
      return options.intervalMs;
    }, { name: 'syncer' });
    this.guard = new MassExpiryGuard(options.maxDropFraction, options.guardHold);
    this.lastSuccess = options.clock.now();
  }

  status(): Omit<SyncStatus, 'fanout'> {
    const staleMs = this.options.clock.now() - this.lastSuccess;
    return {
      stale: staleMs > 3 * this.options.intervalMs,
      staleSeconds: Math.round(staleMs) / 1000,
      revision: this.position.revision,
      holding: this.guard.holding,
      refused: this.refused,
      dbUp: this.dbUp,
    };
  }

  /** The operator's override: publish what the database says even if it drops many cells (or all). */
  releaseGuard(): void {
    this.guard.releaseOnce();
    this.emptyRelease = true;
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
    await this.unlisten?.();
    this.unlisten = null;
  }

  /** One pass now; passes never overlap, a tick during one reruns it (a NOTIFY after stop() does nothing). */
  tick(): Promise<void> {
    return this.loop.kick();
  }

  private async pass(): Promise<void> {
    const { clock, logger } = this.options;
    const started = clock.now();
    // Someone else's file is refused at once, even before the database answers.
    if (!this.mayWrite(this.cluster)) return;
    try {
      this.cluster ??= await this.options.source.clusterId();
      if (!this.mayWrite(this.cluster)) return;
      await this.subscribe();
      await this.pull();
      if (this.dbUp !== true) logger.info({ revision: this.position.revision, source: this.options.source.kind }, 'presence changes reachable; syncing');
      this.dbUp = true;
      this.lastSuccess = clock.now();
      this.durations.push((this.lastSuccess - started) / 1000);
    } catch (err) {
      if (this.dbUp !== false) logger.warn({ err: (err as Error).message, source: this.options.source.kind }, 'cannot sync; keeping the topology as it is');
      this.dbUp = false;
      return;
    }
    if (this.pending) this.publishSnapshot(this.pending);
    this.settleCarried();
  }

  private mayWrite(cluster: string | null): boolean {
    const refusal = this.options.refusal(cluster);
    if (refusal !== this.refused) {
      if (refusal) this.options.logger.error({ reason: refusal }, 'the syncer will not write the topology file: someone else wrote it; DNS keeps answering from it');
      else if (this.refused) this.options.logger.info('the topology file is ours to write again; syncing');
      this.refused = refusal;
    }
    return refusal === null;
  }

  private async subscribe(): Promise<void> {
    if (this.unlisten) return;
    this.unlisten = await this.options.source.subscribe(() => void this.tick(), () => {
      this.unlisten = null;
    });
  }

  private async pull(): Promise<void> {
    const { source } = this.options;
    const plan = await source.plan(this.position);
    if (plan.kind === 'snapshot') return this.snapshot(plan.cause);
    if (plan.kind === 'idle') return;
    let { revision } = this.position;
    if (revision === null) throw Object.assign(new Error(`the ${source.kind} change source planned incremental changes before a first snapshot; it must plan a snapshot while the syncer has no revision`), { code: 'SYNC_PLAN' });
    const pageSize = this.options.pageSize ?? 1000;
    for (;;) {
      const page = await source.changesSince(revision, pageSize);
      if (page.length) {
        const last = page[page.length - 1];
        revision = last.revision;
        this.position = { revision, id: last.id };
        this.applyRows(page, revision);
      }
      if (page.length < pageSize) return;
    }
  }

  /** After `lost`, rows may have been lost (not deleted), so what the snapshot lacks may come back. */
  private async snapshot(cause: SnapshotCause): Promise<void> {
    let builder = this.options.sink.snapshot();
    const snap = await this.options.source.snapshot((row) => {
      const reason = builder.add(toInstance(row));
      if (reason) this.options.logger.warn({ id: row.id }, `presence row skipped: ${reason}`);
    }, () => {
      builder = this.options.sink.snapshot();
    });
    if (this.position.revision !== null) {
      this.options.logger.warn({ was: this.position.revision, now: snap.revision, cause }, cause === 'behind'
        ? 'fallen behind the changes still kept; took a full snapshot'
        : 'rows may have been lost (the revision went back, our last row vanished, or the source could not vouch for our revision); took a full snapshot');
    }
    this.position = { revision: snap.revision, id: snap.lastId };
    this.pending = { view: builder.finish(snap.revision), since: this.options.clock.now(), lost: cause === 'lost' };
  }

  /** One page of changed rows → one delta (to the pending snapshot while one waits). */
  private applyRows(rows: PresenceRow[], version: number): void {
    const target = this.pending?.view ?? this.options.sink.current;
    const removes = new Set<string>();
    const adds = new Map<string, Instance>();
    for (const row of rows) {
      // Known to the database again (re-registered, or tombstoned): no longer carried.
      this.carried.delete(row.id);
      // A presence id names one instance; its old name goes even if the group moved.
      const before = target?.withId(row.id) ?? [];
      const next = row.deleted ? null : toInstance(row);
      // A row also changes for its routes, which DNS does not serve.
      if (next && before.length === 1 && sameInstance(before[0], next)) continue;
      for (const old of before) removes.add(instanceName(old));
      for (const [name, added] of adds) if (added.id === row.id) adds.delete(name);
      if (next) adds.set(instanceName(next), next);
    }
    if (this.pending) {
      this.pending.view.apply({ seq: this.pending.view.seq + 1, version, removes: [...removes], adds: [...adds.values()] });
      return;
    }
    if (!this.options.sink.current) return;
    this.claim();
    this.options.sink.apply(version, [...removes], [...adds.values()]);
  }

  private claim(): void {
    if (this.cluster === null) throw Object.assign(new Error('the syncer was about to change the topology before it knew the database\'s cluster id; a pass reads the cluster id first'), { code: 'SYNC_CLUSTER_UNKNOWN' });
    this.options.claim(this.cluster);
  }

  /**
   * Puts the pending snapshot in service. Instances it lacks that are in service — rows
   * lost without a tombstone (tables emptied, a failover to a replica that missed the last
   * transactions), or the instances of a cell gone without tombstones — are carried over:
   * their registrars re-register them within a heartbeat, and only those still missing
   * after a TTL go, as far as the mass-expiry guard allows. An empty snapshot over a
   * topology with records waits for an operator.
   */
  private publishSnapshot(pending: PendingSnapshot<V>): void {
    const { logger, sink } = this.options;
    const current = sink.current;
    const lost: Instance[] = [];
    if (current && current.recordCount > 0 && !this.emptyRelease) {
      if (pending.view.recordCount === 0) {
        if (!this.heldEmpty) logger.error({ records: current.recordCount },
          'the database has no live instances; keeping the topology in service (POST /v1/reaper/release-guard to empty it)');
        this.heldEmpty = true;
        return;
      }
      // After lost rows, any instance may come back; otherwise (a first snapshot, or one
      // behind the tombstones kept) what is missing was deleted, unless its whole cell is.
      const cells = pending.lost ? null : pending.view.cells();
      for (const i of current.instances()) {
        if (pending.view.withId(i.id).length === 0 && !cells?.has(i.cellId)) lost.push(i);
      }
    }
    this.pending = null;
    this.emptyRelease = false;
    this.heldEmpty = false;
    this.claim();
    const view = pending.view;
    if (lost.length) {
      logger.warn({ lost: lost.length, cells: new Set(lost.map((i) => i.cellId)).size },
        'the database lost instances without tombstones; keeping them for a TTL while their registrars re-register them');
      view.apply({ seq: view.seq + 1, version: view.version, removes: [], adds: lost });
      for (const i of lost) this.carried.set(i.id, i);
      this.carriedSince = pending.since;
    }
    sink.replaceView(view);
  }

  /** Lets go of the carried instances still missing a TTL after the snapshot that lost them, as the guard allows. */
  private settleCarried(): void {
    const { clock, logger, sink } = this.options;
    const current = sink.current;
    if (this.carried.size === 0 || !current || clock.now() - this.carriedSince < this.options.ttlMs) return;
    const byCell = new Map<string, Instance[]>();
    for (const i of this.carried.values()) byCell.set(i.cellId ?? '', [...(byCell.get(i.cellId ?? '') ?? []), i]);
    const cellsInService = current.cells().size;
    const decision = this.guard.decide([...byCell.keys()].map((cellId) => ({ cellId, ttlMs: this.options.ttlMs })), cellsInService, clock.now());
    if (decision.tripped) {
      this.guardTrips++;
      logger.error({ vanished: decision.held.map((c) => c.cellId), cellsInService },
        'the database lost most cells at once (tables emptied or restored?) and they did not re-register; keeping them');
    }
    const gone = decision.release.flatMap((c) => byCell.get(c.cellId) ?? []);
    if (gone.length === 0) return;
    for (const i of gone) this.carried.delete(i.id);
    sink.apply(current.version, gone.map((i) => instanceName(i)), []);
  }
}
