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
import { TopologyImage } from './image.ts';
import type { FileStatus, SyncSettings, ToMain, ToWorker, TopologyWorkerOptions, WorkerStatus } from './protocol.ts';
import { tagsOf } from './cache-tags.ts';
import { TopologyView } from './view.ts';

export interface TopologyStoreOptions {
  file: string;
  aliasesDir: string;
  domains: string[];
  logLevel: string;
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

/** What a cache in front of the view must drop: everything, or the answers carrying these tags (cache-tags.ts). */
export type TopologyChange = 'replaced' | { tags: ArrayLike<number> };

export type TopologyListener = (change: TopologyChange) => void;

const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;

export class TopologyStore {
  private view: TopologyView | null = null;
  private worker: Worker | null = null;
  private last: WorkerStatus | null = null;
  private stopping = false;
  private restarts = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private readonly listeners: TopologyListener[] = [];
  /** The running worker's totals already added to our counters (each worker counts from zero). */
  private counted: WorkerStatus['counts'] = { reloads: 0, reloadFailures: 0, writeFailures: 0, compactions: 0, guardTrips: 0 };
  private readonly metric;

  constructor(private readonly options: TopologyStoreOptions) {
    const { metrics } = options;
    this.metric = {
      reloads: metrics.counter('presence_dns_topology_reloads_total', 'Topology files loaded into service.'),
      reloadFailures: metrics.counter('presence_dns_topology_reload_failures_total', 'Topology or alias files rejected; the last good topology stayed in service.'),
      writeFailures: metrics.counter('presence_dns_topology_write_failures_total', 'Failed writes of the topology file (disk full, read-only); the last good file stayed.'),
      compactions: metrics.counter('presence_dns_topology_compactions_total', 'Deltas compacted into a new topology image (and snapshot, when syncing).'),
      guardTrips: metrics.counter('presence_dns_expiry_guard_trips_total', 'Reaper passes where the mass-expiry guard held back expiries.'),
      restarts: metrics.counter('presence_dns_topology_worker_restarts_total', 'Times the topology worker died and was restarted.'),
      syncDuration: metrics.histogram('presence_dns_sync_duration_seconds', 'Duration of successful sync passes (database → topology).'),
    };
    metrics.gauge('presence_dns_topology_records', 'Instance records in the topology in service.', { collect: () => this.view?.recordCount ?? 0 });
    metrics.gauge('presence_dns_topology_revision', 'Version (revision) of the topology in service.', { collect: () => this.view?.version ?? 0 });
    metrics.gauge('presence_dns_topology_worker_up', '1 while the topology worker runs.', { collect: () => (this.worker ? 1 : 0) });
    if (options.sync) {
      metrics.gauge('presence_dns_stale_seconds', 'Seconds since the topology was last confirmed against the database.', { collect: () => this.last?.sync?.staleSeconds ?? 0 });
      metrics.gauge('presence_dns_db_up', '1 when the last database round trip of the syncer succeeded.', { collect: () => (this.last?.sync?.dbUp ? 1 : 0) });
      metrics.gauge('presence_dns_sync_refused', '1 while the syncer refuses to write a topology file someone else wrote.', { collect: () => (this.last?.sync?.refused ? 1 : 0) });
    }
  }

  get current(): TopologyView | null {
    return this.view;
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
      version: this.view?.version ?? null,
      records: this.view?.recordCount ?? 0,
      lastError: file?.lastError ?? (this.view ? null : 'no topology loaded yet'),
      refused: file?.refused ?? null,
      writeError: file?.writeError ?? null,
      loaded: this.view !== null,
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
    const workerData: TopologyWorkerOptions = {
      file: this.options.file,
      aliasesDir: this.options.aliasesDir,
      domains: this.options.domains,
      logLevel: this.options.logLevel,
      sync: sync && database ? { ...sync, database } : null,
    };
    const worker = startWorker(siblingModule(import.meta.url, 'worker'), workerData, transfer);
    this.worker = worker;
    this.counted = { reloads: 0, reloadFailures: 0, writeFailures: 0, compactions: 0, guardTrips: 0 };
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
      this.options.logger.error({ code, restartInMs: delay, version: this.view?.version ?? null }, 'the topology worker exited; DNS keeps answering from the topology in service');
      this.restartTimer = setTimeout(() => this.spawn(), delay);
    });
  }

  private receive(message: ToMain): void {
    switch (message.type) {
      case 'image': {
        const view = new TopologyView(new TopologyImage(message.buffer), { aliases: message.aliases, domains: this.options.domains });
        view.seq = message.seq;
        const first = this.view === null;
        this.view = view;
        if (first) this.options.logger.info({ version: view.version, records: view.recordCount }, 'topology in service');
        if (message.change === 'replaced') this.notify('replaced');
        else if (message.change.length) this.notify({ tags: message.change });
        return;
      }
      case 'delta': {
        if (!this.view) return;
        const change = this.view.apply(message.delta);
        this.notify(change.everything ? 'replaced' : { tags: tagsOf(change.instances) });
        return;
      }
      case 'aliases':
        this.view?.setAliases(message.aliases);
        this.notify('replaced');
        return;
      case 'status':
        this.account(message.status);
        return;
      case 'started':
        return;
    }
  }

  private notify(change: TopologyChange): void {
    for (const listener of this.listeners) listener(change);
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
