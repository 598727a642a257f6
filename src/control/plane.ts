// The control plane, wired: the topology state, the files it reads (file-source.ts), the
// SQL sync source when there is a database, and the status they report. This is the one
// way to start it: the topology worker thread (worker.ts) calls it, and so do the tests
// and the benchmarks that run control planes in a process of their own. Everything it
// makes goes out through `post` (to the DNS thread, or to a test's sink).
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { FanoutStatus } from '../fanout/index.ts';
import type { ChangeSource } from '../presence/change-source.ts';
import { FileSource } from './file-source.ts';
import type { CatchUp, SourcePosition, ToMain, ToWorker, TopologyMeta, WorkerStatus } from './protocol.ts';
import { SYNC_SOURCE } from './snapshot.ts';
import { Syncer } from './syncer.ts';
import { OwnedFile, TopologyState } from './state.ts';

export interface SyncSetup {
  /** Where the presence changes come from: the database (SqlChangeSource) or the fan-out. */
  source: ChangeSource;
  intervalMs: number;
  ttlMs: number;
  maxDropFraction: number;
  guardHold: number;
  clock?: Clock;
  pageSize?: number;
  /** The fan-out feeding `source`, for its status. */
  fanout?: { status(): FanoutStatus } | null;
  /** false: the syncer runs a pass only when told (`syncer.tick()`), for tests that step time themselves. */
  scheduled?: boolean;
}

export interface ControlPlaneSetup {
  file: string;
  aliasesDir: string;
  domains: string[];
  /** topology.max_file_bytes (default: no limit). */
  maxFileBytes?: number;
  logger: Logger;
  /** Where images, deltas, alias changes and status go. */
  post: (message: ToMain, transfer?: ArrayBuffer[]) => void;
  /** The database the syncer follows; null for a control plane fed by files only. */
  sync: SyncSetup | null;
  /** A restarted control plane's start: the view in service and where reading the files stood. */
  resume?: { view: CatchUp; source: SourcePosition | null } | null;
  /** Running on the DNS thread (host.ts): what it may read there, and what to do past it. */
  inline?: { maxBytes: number; onOversize: () => void };
}

export interface RunningControlPlane {
  readonly state: TopologyState;
  readonly source: FileSource;
  readonly syncer: Syncer | null;
  status(): WorkerStatus;
  /** A message from the DNS thread. */
  handle(message: ToWorker): void;
  stop(): Promise<void>;
}

/** How often a failed write of the owned file is retried, in status reports (a disk full is not fixed in a second). */
const WRITE_RETRY_TICKS = 5;

/**
 * Starts a control plane: reads the files (or goes on from `resume`), then starts the
 * syncer. Resolves once the first read is done, whatever it found.
 */
export async function startControlPlane(setup: ControlPlaneSetup): Promise<RunningControlPlane> {
  const { file, logger } = setup;
  let reportQueued = false;
  let syncer: Syncer | null = null;
  /** Every image or delta goes with the status it results in, sent first: /ready never pairs a new version with an old error. */
  const post = (message: ToMain, transfer: ArrayBuffer[] = []) => {
    if (message.type === 'image' || message.type === 'delta') setup.post({ type: 'status', status: status() });
    setup.post(message, transfer);
  };
  const state = new TopologyState({ domains: setup.domains, post, logger });
  if (setup.resume) state.resume(setup.resume.view);

  const source: FileSource = new FileSource({
    file,
    aliasesDir: setup.aliasesDir,
    state,
    logger,
    maxFileBytes: setup.maxFileBytes,
    inline: setup.inline,
    rewritesCache: setup.sync !== null,
    onForeignWrite: (topology) => {
      logger.error({ file, source: topology.source }, 'someone else replaced the topology file the syncer wrote; serving theirs, and the syncer stops writing it');
      state.owned?.close();
      state.owned = null;
      source.ownSnapshot = null;
      source.reload();
    },
    onRead: reportSoon,
  });

  if (setup.sync) {
    const sync = setup.sync;
    syncer = new Syncer({
      source: sync.source, sink: state, intervalMs: sync.intervalMs, ttlMs: sync.ttlMs, maxDropFraction: sync.maxDropFraction,
      guardHold: sync.guardHold, clock: sync.clock ?? systemClock, logger: logger.child({ part: 'syncer' }), pageSize: sync.pageSize,
      refusal: (cluster) => refusal(file, state.owned !== null, source.topology, cluster),
      claim: (cluster) => {
        if (state.owned) return;
        const owned = new OwnedFile(file, cluster, logger, state.counts);
        state.own(owned);
        source.ownSnapshot = () => ({ cluster, version: owned.snapshotVersion });
      },
    });
  }

  function status(): WorkerStatus {
    const view = state.current;
    return {
      topology: {
        file,
        version: view?.version ?? null,
        records: view?.recordCount ?? 0,
        lastError: source.lastError,
        refused: syncer?.status().refused ?? null,
        writeError: state.owned?.writeError ?? null,
        cacheError: source.cacheError,
        journalError: source.journalError,
      },
      sync: syncer ? { ...syncer.status(), fanout: setup.sync?.fanout?.status() ?? null } : null,
      counts: {
        reloads: source.counts.reloads,
        reloadFailures: source.counts.reloadFailures,
        cacheRejects: source.counts.cacheRejects,
        journalErrors: source.counts.journalErrors,
        writeFailures: state.counts.writeFailures,
        compactions: state.counts.compactions,
        guardTrips: syncer?.guardTrips ?? 0,
      },
      syncDurations: syncer ? syncer.durations.splice(0) : [],
      imageBuffers: state.imageBuffers,
      source: source.position(),
    };
  }

  const report = () => setup.post({ type: 'status', status: status() });
  let ticks = 0;
  const reportEvery = setInterval(() => {
    if (++ticks % WRITE_RETRY_TICKS === 0) state.retryFailedWrite();
    report();
  }, 1000);
  /** A status right after a change, coalesced (a burst of journal lines reports once). */
  function reportSoon(): void {
    if (reportQueued) return;
    reportQueued = true;
    setImmediate(() => {
      reportQueued = false;
      report();
    });
  }

  await source.start(setup.resume?.source ?? undefined);
  if (!setup.resume && source.topology && setup.sync && source.topology.source !== SYNC_SOURCE) {
    logger.error({ file }, `${file} was not written by presence-dns sync (source: ${source.topology.source ?? 'none'}): serving it, and the syncer will not write it`);
  }
  report();
  if (setup.sync?.scheduled !== false) syncer?.start();

  return {
    state,
    source,
    syncer,
    status,
    handle(message) {
      switch (message.type) {
        case 'reload':
          if (!state.owned) source.reload();
          return;
        case 'release':
          state.release(message.bufferId);
          return;
        case 'release-guard':
          syncer?.releaseGuard();
          void syncer?.tick();
          return;
        case 'stop':
          return;
      }
    },
    async stop() {
      clearInterval(reportEvery);
      await Promise.all([syncer?.stop(), source.stop()]);
      state.owned?.close();
      report();
    },
  };
}

/** Why the syncer must leave the file alone: someone else wrote it (the syncer writes only a file it owns). */
function refusal(file: string, owned: boolean, topology: TopologyMeta | null, cluster: string | null): string | null {
  if (owned || topology === null) return null;
  if (topology.source !== SYNC_SOURCE) {
    const who = topology.source === null ? 'a file with no "source" (an unmodified BOSH records.json, or an operator\'s file)' : `"${topology.source}"`;
    return `${file} was written by ${who}, not by presence-dns sync; it is served as it is and never overwritten. Point topology.file at a path of its own to sync, or set sync.enabled: false`;
  }
  if (cluster !== null && topology.cluster !== null && topology.cluster !== cluster) {
    return `${file} was synced from another presence database (${topology.cluster}, not ${cluster}); it is served as it is and never overwritten`;
  }
  return null;
}
