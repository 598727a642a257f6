// The control plane as the DNS thread sees it: the topology worker thread (worker.ts),
// started, restarted with backoff when it dies, and told what to do (reload, release a
// buffer, release the guard, stop). The images, deltas and alias changes it sends go to
// the data plane through a link the data plane gives (`connect`); its status — the file,
// the syncer, its counters — is kept here and counted in the metrics. A restarted worker
// goes on from the view the data plane answers from (the link's `catchUp`), never from an
// older topology it would read again.
//
// A node fed only by a small topology file (no syncer; the file and its journal within
// `inlineMaxBytes`) runs its control plane on this thread instead: a worker thread costs
// about 25 MB, and compiling such a file takes a few milliseconds. The first read of
// anything larger never happens here: the control plane moves to its worker, which goes
// on from the view in service and reads it.
import { statSync } from 'node:fs';
import type { MessagePort, Worker } from 'node:worker_threads';
import type { Registry } from '../admin/metrics.ts';
import type { Logger } from '../log.ts';
import { siblingModule, startWorker } from '../util/worker-thread.ts';
import type { RunningControlPlane } from './plane.ts';
import type { CatchUp, FileStatus, SourcePosition, SyncSettings, SyncStatus, ToMain, ToWorker, TopologyWorkerOptions, ViewMessage, WorkerStatus } from './protocol.ts';

export interface ControlPlaneOptions {
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
  /** With no syncer: the largest topology file (and journal) read on this thread; unset, always a worker. */
  inlineMaxBytes?: number;
}

/** Where the control plane's output goes: the data plane that answers from it. */
export interface DataPlaneLink {
  /** An image, delta or alias change, to put in service. */
  receive(message: ViewMessage): void;
  /** The view in service, for a restarted worker to go on from (null before the first). */
  catchUp(): CatchUp | null;
}

export interface ControlPlaneStatus extends FileStatus {
  /** False while the worker is being restarted (the view in service stays). */
  workerUp: boolean;
  workerRestarts: number;
  /** Where the control plane runs: a worker thread, or this one (a small topology file). */
  thread: 'worker' | 'main';
}

const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;

type Counts = WorkerStatus['counts'];
const ZERO_COUNTS: Counts = { reloads: 0, reloadFailures: 0, cacheRejects: 0, journalErrors: 0, writeFailures: 0, compactions: 0, guardTrips: 0 };

export class ControlPlane {
  private link: DataPlaneLink | null = null;
  /** Buffer ids the running worker sent and has not had back (a restarted worker starts again at 1). */
  private readonly liveIds = new Set<number>();
  private worker: Worker | null = null;
  /** The control plane on this thread, while it runs here (a small file-fed topology). */
  private inline: RunningControlPlane | null = null;
  private last: WorkerStatus | null = null;
  private stopping = false;
  private restarts = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  /** The running worker's totals already added to the counters (each worker counts from zero). */
  private counted: Counts = { ...ZERO_COUNTS };
  private readonly metric;

  constructor(private readonly options: ControlPlaneOptions) {
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
    metrics.gauge('presence_dns_topology_worker_up', '1 while the topology worker runs.', { collect: () => (this.worker ? 1 : 0) });
    metrics.gauge('presence_dns_topology_image_buffers', 'Topology image buffers some thread may still answer from (normally 1 or 2).', { collect: () => this.last?.imageBuffers.inUse ?? 0 });
    metrics.gauge('presence_dns_topology_image_buffers_spare', 'Released topology image buffers kept for the next image.', { collect: () => this.last?.imageBuffers.spare ?? 0 });
    if (options.sync) {
      metrics.gauge('presence_dns_stale_seconds', 'Seconds since the topology was last confirmed against the database.', { collect: () => this.last?.sync?.staleSeconds ?? 0 });
      metrics.gauge('presence_dns_db_up', '1 when the last database round trip of the syncer succeeded.', { collect: () => (this.last?.sync?.dbUp ? 1 : 0) });
      metrics.gauge('presence_dns_sync_refused', '1 while the syncer refuses to write a topology file someone else wrote.', { collect: () => (this.last?.sync?.refused ? 1 : 0) });
    }
    if (options.sync?.fanout) {
      const fanout = () => this.last?.sync?.fanout ?? null;
      metrics.gauge('presence_dns_fanout_fallback', '1 while the syncer reads the database because the fan-out cannot answer (NATS down, no publisher heard, a gap the stream no longer holds).', { collect: () => (fanout()?.mode === 'fallback' ? 1 : 0) });
      metrics.gauge('presence_dns_fanout_publishing', '1 while this node is the publisher (holds the sync-publisher lock).', { collect: () => (fanout()?.publishing ? 1 : 0) });
      metrics.gauge('presence_dns_fanout_behind', 'Revisions between the head the publisher announced and the revision this node applied.', {
        collect: () => Math.max(0, (fanout()?.head ?? 0) - (this.last?.sync?.revision ?? 0)),
      });
      metrics.gauge('presence_dns_fanout_rejected_messages', 'Messages from NATS that failed their checks and were not applied, since the topology worker started.', { collect: () => fanout()?.rejected ?? 0 });
    }
  }

  /** Where images, deltas and alias changes go from now on (before `start`). */
  connect(link: DataPlaneLink): void {
    this.link = link;
  }

  /** Starts the control plane; resolves once it has read the files (or found none). */
  async start(): Promise<void> {
    if (this.options.sync === null && this.options.inlineMaxBytes !== undefined && fileSize(this.options.file) <= this.options.inlineMaxBytes) {
      await this.startInline(this.options.inlineMaxBytes);
      return;
    }
    await new Promise<void>((resolve) => this.spawn(resolve));
  }

  private async startInline(maxBytes: number): Promise<void> {
    const { startControlPlane } = await import('./plane.ts');
    const { file, aliasesDir, domains, maxFileBytes, logger } = this.options;
    this.inline = await startControlPlane({
      file, aliasesDir, domains, maxFileBytes, logger, sync: null,
      post: (message) => this.receive(message),
      inline: { maxBytes, onOversize: () => void this.toWorker() },
    });
  }

  /** The topology outgrew this thread: the worker goes on from the view in service and reads it. */
  private async toWorker(): Promise<void> {
    const inline = this.inline;
    if (!inline) return;
    this.inline = null;
    const source = inline.source.position();
    await inline.stop();
    this.options.logger.info({ file: this.options.file, inlineMaxBytes: this.options.inlineMaxBytes }, 'the topology file outgrew the DNS thread; its control plane moves to a worker thread');
    this.spawn(undefined, source);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.inline?.stop();
    this.inline = null;
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

  /** No thread reads the image buffer `bufferId` any more: the worker may build into it again. */
  release(bufferId: number): void {
    if (!this.liveIds.delete(bufferId)) return;
    this.send({ type: 'release', bufferId });
  }

  status(): ControlPlaneStatus {
    const file = this.last?.topology;
    return {
      file: this.options.file,
      version: file?.version ?? null,
      records: file?.records ?? 0,
      lastError: file?.lastError ?? null,
      refused: file?.refused ?? null,
      writeError: file?.writeError ?? null,
      cacheError: file?.cacheError ?? null,
      journalError: file?.journalError ?? null,
      workerUp: this.worker !== null || this.inline !== null,
      workerRestarts: this.restarts,
      thread: this.inline ? 'main' : 'worker',
    };
  }

  syncStatus(): SyncStatus | null {
    return this.last?.sync ?? null;
  }

  private send(message: ToWorker): void {
    if (this.inline) this.inline.handle(message);
    else this.worker?.postMessage(message);
  }

  private spawn(started?: () => void, resumeSource?: SourcePosition): void {
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
    const view = this.link?.catchUp() ?? null;
    const workerData: TopologyWorkerOptions = {
      file: this.options.file,
      aliasesDir: this.options.aliasesDir,
      domains: this.options.domains,
      logLevel: this.options.logLevel,
      maxFileBytes: this.options.maxFileBytes,
      sync: sync && database ? { ...sync, database } : null,
      resume: view ? { view, source: resumeSource ?? this.last?.source ?? null } : null,
    };
    const worker = startWorker(siblingModule(import.meta.url, 'worker'), workerData, transfer, 'topology');
    this.worker = worker;
    // The ids of a worker that died name buffers the new one knows nothing of.
    this.liveIds.clear();
    this.counted = { ...ZERO_COUNTS };
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
      this.options.logger.error({ code, restartInMs: delay, version: this.last?.topology.version ?? null },
        'the topology worker exited; DNS keeps answering from the topology in service');
      this.restartTimer = setTimeout(() => this.spawn(), delay);
    });
  }

  private receive(message: ToMain): void {
    switch (message.type) {
      case 'image':
      case 'delta':
      case 'aliases':
        if (message.type === 'image') this.liveIds.add(message.bufferId);
        this.link?.receive(message);
        return;
      case 'status':
        this.account(message.status);
        return;
      case 'started':
        return;
    }
  }

  private account(status: WorkerStatus): void {
    for (const key of Object.keys(this.counted) as Array<keyof Counts>) {
      const added = status.counts[key] - this.counted[key];
      if (added > 0) this.metric[key].inc(added);
      this.counted[key] = status.counts[key];
    }
    for (const seconds of status.syncDurations) this.metric.syncDuration.observe(seconds);
    this.last = status;
  }
}

/** A file's size, 0 when there is none yet. */
function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
