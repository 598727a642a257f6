// The syncer: keeps this node's topology file equal to the live presences. Every
// interval (or earlier on a NOTIFY) it reads `revision > last` in pages; a fresh node, or
// one that sees the revision go backwards or its last row vanish, takes a consistent
// snapshot. Cells a snapshot drops without a tombstone stay in the file for a TTL (their
// registrars re-register within a heartbeat), and then only as far as the mass-expiry
// guard allows (tables emptied: the file stays until the registrars have re-registered).
// When the database is unreachable the file is left alone and staleness grows.
import { readFileSync } from 'node:fs';
import type { Registry } from '../admin/metrics.ts';
import type { Logger } from '../log.ts';
import { parseTopology, writeTopologyFile, type TopologyRecord } from '../topology/index.ts';
import type { Clock } from '../clock.ts';
import { MassExpiryGuard, planSync, vanishedCells, type SyncPosition } from './decisions.ts';
import { NOTIFY_CHANNEL, type PresenceRecord, type PresenceRow, type PresenceStore } from './store.ts';
import { PassLoop } from './loop.ts';

export interface SyncerOptions {
  store: PresenceStore;
  file: string;
  intervalMs: number;
  /** The cells' TTL: how long the guard holds a big drop before it lets it through. */
  ttlMs: number;
  maxDropFraction: number;
  guardHold: number;
  clock: Clock;
  logger: Logger;
  metrics: Registry;
  /** Wake early on NOTIFY (on by default; polling stays the baseline). */
  listen?: boolean;
  pageSize?: number;
}

export interface SyncStatus {
  /** True while the last successful sync is older than three intervals. */
  stale: boolean;
  staleSeconds: number;
  revision: number | null;
  /** A snapshot held back by the guard: the cells it would drop. */
  holding: string[];
}

function toTopologyRecord(r: PresenceRecord): TopologyRecord {
  return {
    id: r.id, numId: r.numId, group: r.group, groupIds: r.groupIds, network: r.network, networkId: r.networkId,
    deployment: r.deployment, az: r.az, azId: r.azId, index: r.index, ip: r.ip, domain: r.domain,
    agentId: r.agentId, cellId: r.cellId, health: r.health, ports: r.ports,
  };
}

export class Syncer {
  private readonly live = new Map<string, PresenceRecord>();
  private position: SyncPosition = { revision: null, id: null };
  /** Cell of every record in the file in service (ours, or what was there at start). */
  private publishedCells: Array<string | null> = [];
  private published = false;
  private dirty = false;
  /** When a snapshot replaced our view: publishing what it dropped needs the guard's consent. */
  private snapshotAt: number | null = null;
  private readonly guard: MassExpiryGuard<{ cellId: string; ttlMs: number }>;
  private lastSuccess: number;
  private readonly loop: PassLoop;
  private unlisten: (() => Promise<void>) | null = null;
  /** null until the first pass. */
  private dbUp: boolean | null = null;
  private readonly duration;
  private readonly trips;

  constructor(private readonly options: SyncerOptions) {
    this.loop = new PassLoop(options.clock, async () => {
      await this.pass();
      return options.intervalMs;
    });
    this.guard = new MassExpiryGuard(options.maxDropFraction, options.guardHold);
    this.lastSuccess = options.clock.now();
    const { metrics } = options;
    this.duration = metrics.histogram('presence_dns_sync_duration_seconds', 'Duration of successful sync passes (database → topology file).');
    this.trips = metrics.counter('presence_dns_expiry_guard_trips_total', 'Reaper passes where the mass-expiry guard held back expiries.');
    metrics.gauge('presence_dns_stale_seconds', 'Seconds since the topology file was last confirmed against the database.', { collect: () => this.status().staleSeconds });
    metrics.gauge('presence_dns_db_up', '1 when the last database round trip of the syncer succeeded.', { collect: () => (this.dbUp === true ? 1 : 0) });
    this.publishedCells = this.readPublishedCells();
  }

  status(): SyncStatus {
    const staleMs = this.options.clock.now() - this.lastSuccess;
    return {
      stale: staleMs > 3 * this.options.intervalMs,
      staleSeconds: Math.round(staleMs) / 1000,
      revision: this.position.revision,
      holding: this.guard.holding,
    };
  }

  /** The operator's override: publish what the database says even if it drops many cells. */
  releaseGuard(): void {
    this.guard.releaseOnce();
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

  private readPublishedCells(): Array<string | null> {
    try {
      const result = parseTopology(readFileSync(this.options.file, 'utf8'));
      return result.ok ? result.topology.instances.map((i) => i.cellId) : [];
    } catch {
      return [];
    }
  }

  private async pass(): Promise<void> {
    const { clock, logger } = this.options;
    const started = clock.now();
    try {
      await this.subscribe();
      await this.pull();
      if (this.dbUp !== true) logger.info({ revision: this.position.revision }, 'database reachable; syncing');
      this.dbUp = true;
      this.lastSuccess = clock.now();
      this.duration.observe((this.lastSuccess - started) / 1000);
    } catch (err) {
      if (this.dbUp !== false) logger.warn({ err: (err as Error).message }, 'cannot sync from the database; keeping the topology file as it is');
      this.dbUp = false;
      return;
    }
    if (this.dirty || !this.published) await this.publish();
  }

  private async subscribe(): Promise<void> {
    if (this.unlisten || this.options.listen === false) return;
    this.unlisten = await this.options.store.db.listen(NOTIFY_CHANNEL, () => void this.tick(), () => {
      this.unlisten = null;
    });
  }

  private async pull(): Promise<void> {
    const { store } = this.options;
    const head = await store.head();
    const { id, revision } = this.position;
    const rowRevision = id !== null && revision !== null && head.revision >= revision ? await store.rowRevision(id) : undefined;
    const plan = planSync(this.position, head, rowRevision);
    if (plan === 'snapshot') {
      const snap = await store.snapshot();
      if (this.position.revision !== null) this.options.logger.warn({ was: this.position.revision, now: snap.revision }, 'revision went backwards or our last row vanished; took a full snapshot');
      this.live.clear();
      for (const row of snap.rows) this.live.set(row.id, row);
      this.position = { revision: snap.revision, id: snap.lastId };
      this.snapshotAt = this.options.clock.now();
      this.dirty = true;
      return;
    }
    if (plan === 'idle') return;
    const pageSize = this.options.pageSize ?? 1000;
    for (;;) {
      const page = await store.changesSince(this.position.revision!, pageSize);
      for (const row of page) this.apply(row);
      if (page.length) {
        const last = page[page.length - 1];
        this.position = { revision: last.revision, id: last.id };
        this.dirty = true;
      }
      if (page.length < pageSize) return;
    }
  }

  private apply(row: PresenceRow): void {
    if (row.deleted) this.live.delete(row.id);
    else this.live.set(row.id, row);
  }

  private async publish(): Promise<void> {
    const { clock, logger, file } = this.options;
    const records = [...this.live.values()];
    if (this.snapshotAt !== null) {
      const gone = vanishedCells(this.publishedCells, records.map((r) => r.cellId));
      // Rows that vanished without a tombstone were lost, not expired: every live
      // registrar re-registers within one heartbeat, so nothing is dropped before a TTL.
      if (gone.length && clock.now() - this.snapshotAt < this.options.ttlMs) return;
      const publishedCellCount = new Set(this.publishedCells).size;
      const decision = this.guard.decide(gone.map((cellId) => ({ cellId, ttlMs: this.options.ttlMs })), publishedCellCount, clock.now());
      if (decision.held.length) {
        if (decision.tripped) {
          this.trips.inc();
          logger.error({ vanished: decision.held.map((c) => c.cellId), cellsInFile: publishedCellCount },
            'the database lost most cells at once (tables emptied or restored?) and they did not re-register; keeping the topology file');
        }
        return;
      }
      this.snapshotAt = null;
    }
    const revision = this.position.revision ?? 0;
    try {
      await writeTopologyFile(file, { version: revision, source: 'presence-dns sync', records: records.map(toTopologyRecord) });
    } catch (err) {
      logger.error({ file, err: (err as Error).message }, 'cannot write the topology file; the previous one stays in service');
      return;
    }
    this.publishedCells = records.map((r) => r.cellId);
    this.published = true;
    this.dirty = false;
    logger.debug({ revision, records: records.length }, 'topology file written');
  }
}
