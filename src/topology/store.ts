// The topology in service, on the DNS thread: it starts the topology worker (the control
// plane) and holds the view DNS answers from. A new image is put in service by swapping
// one reference; a delta is applied in place, O(change). Nothing here reads, parses or
// writes a topology file. If the worker dies, the view in service stays and the worker is
// restarted with backoff; /ready and the metrics say so meanwhile.
import type { MessagePort, Worker } from 'node:worker_threads';
import type { Registry } from '../admin/metrics.ts';
import type { Logger } from '../log.ts';
import type { SyncStatus } from '../presence/syncer.ts';
import { siblingModule, startWorker } from '../util/worker-thread.ts';
import { ViewFollower, type CatchUp, type TopologyChange, type ViewMessage } from './follower.ts';
import type { FileStatus, SyncSettings, ToMain, ToWorker, TopologyWorkerOptions, WorkerStatus } from './protocol.ts';
import type { TopologyView } from './view.ts';

export interface TopologyStoreOptions {
  file: string;
  aliasesDir: string;
  domains: string[];
  logLevel: string;
  /** topology.max_file_bytes. */
  maxFileBytes: number;
  logger: Logger;
  metrics: Registry;
  /** The syncer's settings; the database is a URL, or a fresh port to the embedded one per worker start. */
  sync: (Omit<SyncSettings, 'database'> & { database: { url: string } | { connect: () => MessagePort } }) | null;
}

export interface TopologyStatus extends FileStatus {
  loaded: boolean;
  /** False while the worker is being restarted (the view in service stays). */
  workerUp: boolean;
  workerRestarts: number;
}

/** A change put in service; `stamp` numbers it, once for every thread that follows it (fastpath.ts). */
export type TopologyListener = (change: TopologyChange, stamp: number) => void;
/** Another thread following the same messages, each with its stamp. */
export type TopologyRelay = (message: ViewMessage, stamp: number) => void;

const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;

export class TopologyStore {
  private readonly follower: ViewFollower;
  /** Other threads following the same messages (the DNS workers). */
  private readonly relays: TopologyRelay[] = [];
  /** The last change's number: one sequence for the process, whatever topology worker sent it. */
  private stamp = 0;
  /** Which image buffer each thread answering DNS reads ('main', or a DNS worker's key). */
  private readonly holders = new Map<string, number>();
  /** Buffer ids the running topology worker sent and has not had back (a restarted worker starts again at 1). */
  private readonly liveIds = new Set<number>();
  private worker: Worker | null = null;
  private last: WorkerStatus | null = null;
  private stopping = false;
  private restarts = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private readonly listeners: TopologyListener[] = [];
  /** The running worker's totals already added to our counters (each worker counts from zero). */
  private counted: WorkerStatus['counts'] = { reloads: 0, reloadFailures: 0, cacheRejects: 0, journalErrors: 0, writeFailures: 0, compactions: 0, guardTrips: 0 };
  private readonly metric;

  constructor(private readonly options: TopologyStoreOptions) {
    this.follower = new ViewFollower(options.domains);
    const { metrics } = options;
    this.metric = {
      reloads: metrics.counter('presence_dns_topology_reloads_total', 'Topology files loaded into service.'),
      reloadFailures: metrics.counter('presence_dns_topology_reload_failures_total', 'Topology or alias files rejected; the last good topology stayed in service.'),
      cacheRejects: metrics.counter('presence_dns_topology_image_cache_rejects_total', 'Cached topology images that failed verification and were not served (the snapshot was read instead).'),
      journalErrors: metrics.counter('presence_dns_topology_journal_errors_total', 'Topology journals whose applying stopped at a line that failed its checks (what came before it stayed in service).'),
      writeFailures: metrics.counter('presence_dns_topology_write_failures_total', 'Failed writes of the topology file (disk full, read-only); the last good file stayed.'),
      compactions: metrics.counter('presence_dns_topology_compactions_total', 'Deltas compacted into a new topology image (and snapshot, when syncing).'),
      guardTrips: metrics.counter('presence_dns_expiry_guard_trips_total', 'Reaper passes where the mass-expiry guard held back expiries.'),
      restarts: metrics.counter('presence_dns_topology_worker_restarts_total', 'Times the topology worker died and was restarted.'),
      syncDuration: metrics.histogram('presence_dns_sync_duration_seconds', 'Duration of successful sync passes (database → topology).'),
    };
    metrics.gauge('presence_dns_topology_records', 'Instance records in the topology in service.', { collect: () => this.current?.recordCount ?? 0 });
    metrics.gauge('presence_dns_topology_revision', 'Version (revision) of the topology in service.', { collect: () => this.current?.version ?? 0 });
    metrics.gauge('presence_dns_topology_worker_up', '1 while the topology worker runs.', { collect: () => (this.worker ? 1 : 0) });
    metrics.gauge('presence_dns_topology_image_buffers', 'Topology image buffers some thread may still answer from (normally 1 or 2).', { collect: () => this.last?.imageBuffers.inUse ?? 0 });
    metrics.gauge('presence_dns_topology_image_buffers_spare', 'Released topology image buffers kept for the next image.', { collect: () => this.last?.imageBuffers.spare ?? 0 });
    if (options.sync) {
      metrics.gauge('presence_dns_stale_seconds', 'Seconds since the topology was last confirmed against the database.', { collect: () => this.last?.sync?.staleSeconds ?? 0 });
      metrics.gauge('presence_dns_db_up', '1 when the last database round trip of the syncer succeeded.', { collect: () => (this.last?.sync?.dbUp ? 1 : 0) });
      metrics.gauge('presence_dns_sync_refused', '1 while the syncer refuses to write a topology file someone else wrote.', { collect: () => (this.last?.sync?.refused ? 1 : 0) });
    }
  }

  get current(): TopologyView | null {
    return this.follower.view;
  }

  /** Hands every image, delta and alias change on to `relay` too (a DNS worker), after `catchUp()`. */
  relay(relay: TopologyRelay): void {
    this.relays.push(relay);
  }

  /** The state a new follower starts from (null before the first image). */
  catchUp(): CatchUp | null {
    return this.follower.catchUp();
  }

  /**
   * Another thread (`key`) now reads the image buffer `bufferId`; the buffer it read
   * before goes back to the topology worker for reuse once no thread reads it.
   */
  hold(key: string, bufferId: number | null): void {
    const before = this.holders.get(key);
    if (bufferId === null) this.holders.delete(key);
    else this.holders.set(key, bufferId);
    if (before !== undefined && before !== bufferId) this.releaseIfUnread(before);
  }

  private releaseIfUnread(bufferId: number): void {
    if (!this.liveIds.has(bufferId)) return;
    for (const held of this.holders.values()) if (held === bufferId) return;
    this.liveIds.delete(bufferId);
    this.send({ type: 'release', bufferId });
  }

  /** Called on every change put in service (the DNS handler invalidates its cache). */
  onChange(listener: TopologyListener): void {
    this.listeners.push(listener);
  }

  /** Starts the worker; resolves once it has read the file (or found none). */
  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.spawn(resolve));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const worker = this.worker;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    this.send({ type: 'stop' });
    const timer = setTimeout(() => void worker.terminate(), 3000);
    await exited;
    clearTimeout(timer);
  }

  /** SIGHUP: re-read the alias files and the topology file. */
  reload(): void {
    this.send({ type: 'reload' });
  }

  /** The operator's override of the syncer's mass-drop guard. */
  releaseGuard(): void {
    this.send({ type: 'release-guard' });
  }

  status(): TopologyStatus {
    const file = this.last?.topology;
    return {
      file: this.options.file,
      version: this.current?.version ?? null,
      records: this.current?.recordCount ?? 0,
      lastError: file?.lastError ?? (this.current ? null : 'no topology loaded yet'),
      refused: file?.refused ?? null,
      writeError: file?.writeError ?? null,
      cacheError: file?.cacheError ?? null,
      journalError: file?.journalError ?? null,
      loaded: this.current !== null,
      workerUp: this.worker !== null,
      workerRestarts: this.restarts,
    };
  }

  syncStatus(): SyncStatus | null {
    return this.last?.sync ?? null;
  }

  private send(message: ToWorker): void {
    this.worker?.postMessage(message);
  }

  private spawn(started?: () => void): void {
    const { sync } = this.options;
    const transfer: MessagePort[] = [];
    let database: SyncSettings['database'] | null = null;
    if (sync) {
      if ('url' in sync.database) database = { url: sync.database.url };
      else {
        const port = sync.database.connect();
        transfer.push(port);
        database = { port };
      }
    }
    // A restarted worker goes on from the view in service, never from an older one it would read again.
    const view = this.follower.catchUp();
    const workerData: TopologyWorkerOptions = {
      file: this.options.file,
      aliasesDir: this.options.aliasesDir,
      domains: this.options.domains,
      logLevel: this.options.logLevel,
      maxFileBytes: this.options.maxFileBytes,
      sync: sync && database ? { ...sync, database } : null,
      resume: view ? { view, source: this.last?.source ?? null } : null,
    };
    const worker = startWorker(siblingModule(import.meta.url, 'worker'), workerData, transfer);
    this.worker = worker;
    // The ids of a worker that died name buffers the new one knows nothing of.
    this.liveIds.clear();
    this.counted = { reloads: 0, reloadFailures: 0, cacheRejects: 0, journalErrors: 0, writeFailures: 0, compactions: 0, guardTrips: 0 };
    let first = true;
    worker.on('message', (message: ToMain) => {
      this.receive(message);
      if (first && message.type === 'started') {
        first = false;
        started?.();
      }
    });
    worker.on('error', (err: Error) => this.options.logger.error({ err: err.message, stack: err.stack }, 'the topology worker failed'));
    worker.on('exit', (code) => {
      this.worker = null;
      if (first) started?.();
      if (this.stopping) return;
      this.restarts++;
      this.metric.restarts.inc();
      const delay = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** Math.min(this.restarts - 1, 10));
      this.options.logger.error({ code, restartInMs: delay, version: this.current?.version ?? null }, 'the topology worker exited; DNS keeps answering from the topology in service');
      this.restartTimer = setTimeout(() => this.spawn(), delay);
    });
  }

  private receive(message: ToMain): void {
    switch (message.type) {
      case 'image':
      case 'delta':
      case 'aliases': {
        const before = this.current;
        if (message.type === 'image') this.liveIds.add(message.bufferId);
        const change = this.follower.receive(message);
        const stamp = ++this.stamp;
        const view = this.current;
        if (!before && view) this.options.logger.info({ version: view.version, records: view.recordCount }, 'topology in service');
        for (const relay of this.relays) relay(message, stamp);
        if (change) this.notify(change, stamp);
        if (message.type === 'image') this.hold('main', message.bufferId);
        return;
      }
      case 'status':
        this.account(message.status);
        return;
      case 'started':
        return;
    }
  }

  private notify(change: TopologyChange, stamp: number): void {
    for (const listener of this.listeners) listener(change, stamp);
  }

  private account(status: WorkerStatus): void {
    for (const key of Object.keys(this.counted) as Array<keyof WorkerStatus['counts']>) {
      const added = status.counts[key] - this.counted[key];
      if (added > 0) this.metric[key].inc(added);
      this.counted[key] = status.counts[key];
    }
    for (const seconds of status.syncDurations) this.metric.syncDuration.observe(seconds);
    this.last = status;
  }
}
