// The topology worker: the control plane's thread. It opens the database the syncer
// follows (a PostgreSQL server, or the embedded one's thread through a port), starts the
// control plane (plane.ts) and relays messages between it and the DNS thread. Nothing it
// does can stall a DNS answer; if it dies, the DNS thread keeps the view in service and
// restarts it (host.ts).
import { workerData } from 'node:worker_threads';
import { createLogger } from '../log.ts';
import { systemClock } from '../clock.ts';
import type { Fanout } from '../fanout/index.ts';
import type { Db } from '../presence/db.ts';
import { reportBackgroundFailures } from '../util/background.ts';
import { parentThreadPort } from '../util/worker-thread.ts';
import { startControlPlane, type SyncSetup } from './plane.ts';
import type { ToMain, ToWorker, TopologyWorkerOptions } from './protocol.ts';

const port = parentThreadPort();
const options = workerData as TopologyWorkerOptions;
const logger = createLogger(options.logLevel).child({ module: 'topology' });
// Logged from this thread (its failures are not counted in the main thread's metrics).
reportBackgroundFailures(logger);

let db: Db | null = null;
let sync: SyncSetup | null = null;
let fanout: Fanout | null = null;
if (options.sync) {
  // Loaded only for a syncing node: a DNS-only daemon's worker never loads pg (nor nats without the fan-out).
  const [{ openPgDb, POOLS }, { RemoteDb }, { migrate }, { PresenceStore }, { SqlChangeSource }] = await Promise.all([
    import('../presence/pg-db.ts'), import('../presence/embedded-db.ts'), import('../presence/schema.ts'), import('../presence/store.ts'),
    import('../presence/change-source.ts'),
  ]);
  const { database, fanout: fanoutSettings, ...settings } = options.sync;
  const pool = fanoutSettings && !fanoutSettings.publisher ? POOLS.follower : POOLS.syncer;
  const opened: Db = 'url' in database ? openPgDb(database.url, logger, pool) : new RemoteDb(database.port);
  db = opened;
  let migrated = false;
  const store = new PresenceStore(opened, async () => {
    if (migrated) return;
    await migrate(opened);
    migrated = true;
  });
  const sql = new SqlChangeSource(store);
  if (fanoutSettings) {
    const { startFanout } = await import('../fanout/index.ts');
    fanout = startFanout({ settings: fanoutSettings, sql, intervalMs: settings.intervalMs, lockTtlMs: settings.ttlMs, clock: systemClock, logger });
  }
  sync = { source: fanout?.source ?? sql, fanout, ...settings };
}

const plane = await startControlPlane({
  file: options.file,
  aliasesDir: options.aliasesDir,
  domains: options.domains,
  maxFileBytes: options.maxFileBytes,
  logger,
  post: (message: ToMain, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer),
  sync,
  resume: options.resume,
});
port.postMessage({ type: 'started' } satisfies ToMain);

port.on('message', (message: ToWorker) => {
  if (message.type !== 'stop') {
    plane.handle(message);
    return;
  }
  void plane.stop()
    .then(() => fanout?.stop())
    .then(() => db?.close())
    .finally(() => process.exit(0));
});
