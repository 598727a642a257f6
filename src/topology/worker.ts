// The topology worker: the control plane's thread (DESIGN §2.1). It reads and validates
// the topology files, runs the syncer (database → deltas), compiles images, writes the
// file, and sends the DNS thread finished images and small deltas. Nothing it does can
// stall a DNS answer; if it dies, the DNS thread keeps the last image and restarts it.
import { parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../clock.ts';
import { createLogger } from '../log.ts';
import { reportBackgroundFailures } from '../util/background.ts';
import type { Db } from '../presence/db.ts';
import type { Syncer } from '../presence/syncer.ts';
import { FileSource } from './file-source.ts';
import type { ToMain, ToWorker, TopologyWorkerOptions, WorkerStatus } from './protocol.ts';
import { OwnedFile, TopologyState } from './state.ts';
import type { Topology } from './types.ts';
import { SYNC_SOURCE } from './writer.ts';

const options = workerData as TopologyWorkerOptions;
let reportQueued = false;
const logger = createLogger(options.logLevel).child({ module: 'topology' });
// Logged from this thread (its failures are not counted in the main thread's metrics).
reportBackgroundFailures(logger);
/** Every image or delta goes with the status it results in, sent first: /ready never pairs a new version with an old error. */
const post = (message: ToMain, transfer: ArrayBuffer[] = []) => {
  if (message.type === 'image' || message.type === 'delta') parentPort!.postMessage({ type: 'status', status: status() } satisfies ToMain);
  parentPort!.postMessage(message, transfer);
};
const state = new TopologyState({ domains: options.domains, post, logger });

/** Why the syncer must leave the file alone: someone else wrote it (DESIGN §3.2). */
function refusal(topology: Omit<Topology, 'instances'> | null, cluster: string | null): string | null {
  if (state.owned || topology === null) return null;
  if (topology.source !== SYNC_SOURCE) {
    const who = topology.source === null ? 'a file with no "source" (an unmodified BOSH records.json, or an operator\'s file)' : `"${topology.source}"`;
    return `${options.file} was written by ${who}, not by presence-dns sync; it is served as it is and never overwritten. Point topology.file at a path of its own to sync, or set sync.enabled: false`;
  }
  if (cluster !== null && topology.cluster !== null && topology.cluster !== cluster) {
    return `${options.file} was synced from another presence database (${topology.cluster}, not ${cluster}); it is served as it is and never overwritten`;
  }
  return null;
}

if (options.resume) state.resume(options.resume.view);

const source = new FileSource({
  file: options.file,
  aliasesDir: options.aliasesDir,
  state,
  logger,
  maxFileBytes: options.maxFileBytes,
  rewritesCache: options.sync !== null,
  onForeignWrite: (topology) => {
    logger.error({ file: options.file, source: topology.source }, 'someone else replaced the topology file the syncer wrote; serving theirs, and the syncer stops writing it');
    state.owned?.close();
    state.owned = null;
    source.ownSnapshot = null;
    source.reload();
  },
  onRead: reportSoon,
});

let db: Db | null = null;
let syncer: Syncer | null = null;
if (options.sync) {
  // Loaded only for a syncing node: a DNS-only daemon's worker never loads pg.
  const [{ openPgDb, POOLS }, { RemoteDb }, { migrate }, { PresenceStore }, { Syncer }] = await Promise.all([
    import('../presence/pg-db.ts'), import('../presence/embedded-db.ts'), import('../presence/schema.ts'),
    import('../presence/store.ts'), import('../presence/syncer.ts'),
  ]);
  const sync = options.sync;
  db = 'url' in sync.database ? openPgDb(sync.database.url, logger, POOLS.syncer) : new RemoteDb(sync.database.port);
  const database = db;
  let migrated = false;
  const store = new PresenceStore(database, async () => {
    if (migrated) return;
    await migrate(database);
    migrated = true;
  });
  syncer = new Syncer({
    store, sink: state, intervalMs: sync.intervalMs, ttlMs: sync.ttlMs, maxDropFraction: sync.maxDropFraction,
    guardHold: sync.guardHold, clock: systemClock, logger: logger.child({ part: 'syncer' }),
    refusal: (cluster) => refusal(source.topology, cluster),
    claim: (cluster) => {
      if (state.owned) return;
      const owned = new OwnedFile(options.file, cluster, logger, state.counts);
      state.own(owned);
      source.ownSnapshot = () => ({ cluster, version: owned.snapshotVersion });
    },
  });
}

function status(): WorkerStatus {
  const view = state.current;
  return {
    topology: {
      file: options.file,
      version: view?.version ?? null,
      records: view?.recordCount ?? 0,
      lastError: source.lastError,
      refused: syncer?.status().refused ?? null,
      writeError: state.owned?.writeError ?? null,
      cacheError: source.cacheError,
      journalError: source.journalError,
    },
    sync: syncer?.status() ?? null,
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

const report = () => post({ type: 'status', status: status() });
/** How often a failed write of the owned file is retried (a disk full is not fixed in a second). */
const WRITE_RETRY_TICKS = 5;
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

parentPort!.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'reload':
      if (!state.owned) source.reload();
      break;
    case 'release':
      state.release(message.bufferId);
      break;
    case 'release-guard':
      syncer?.releaseGuard();
      void syncer?.tick();
      break;
    case 'stop':
      clearInterval(reportEvery);
      void Promise.all([syncer?.stop(), source.stop()])
        .then(() => db?.close())
        .finally(() => {
          state.owned?.close();
          post({ type: 'status', status: status() });
          process.exit(0);
        });
      break;
  }
});

await source.start(options.resume?.source ?? undefined);
if (!options.resume && source.topology && options.sync && source.topology.source !== SYNC_SOURCE) {
  logger.error({ file: options.file }, `${options.file} was not written by presence-dns sync (source: ${source.topology.source ?? 'none'}): serving it, and the syncer will not write it`);
}
report();
post({ type: 'started' });
syncer?.start();
