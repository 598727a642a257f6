// presence: this node's side of the shared presence database — the query
// interface and its adapters (a PostgreSQL server via `pg`; the embedded PGlite in a
// thread of its own), the migrations, the registrar (cell + instances + heartbeats) and
// the reaper (SQL lock, locket expiry rule, mass-expiry guard), which run on the main
// thread, and the syncer (revisions → topology deltas), which runs in the topology worker.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { MessagePort } from 'node:worker_threads';
import type { AdminServer, Registry } from '../admin/index.ts';
import type { Logger } from '../log.ts';
import type { RegistrationSource } from '../registrations/types.ts';
import { systemClock, type Clock } from '../clock.ts';
import { errorMessage } from '../util/error-message.ts';
import { redactUrl } from '../util/redact.ts';
import type { PresenceConfig } from './config.ts';
import { PresenceError, type Db } from './db.ts';
import { startEmbeddedDb } from './embedded-db.ts';
import { Reaper, type ReaperStatus } from './reaper.ts';
import { Registrar } from './registrar.ts';
import { migrate } from './schema.ts';
import { PresenceStore } from './store.ts';

export { PresenceError, type Db, type Queryable } from './db.ts';
export * from './decisions.ts';
export { migrate } from './schema.ts';
export { PresenceStore, NOTIFY_CHANNEL, type CellMember, type PresenceRecord, type PresenceRow, type WriteResult } from './store.ts';
export { Registrar, type RegistrarOptions } from './registrar.ts';
export { Reaper, REAPER_LOCK, type ReaperOptions, type ReaperStatus } from './reaper.ts';

/** The syncer, which runs in the control plane: what /ready and /v1/reaper show of it, and its guard. */
export interface SyncerLink {
  status(): { stale: boolean; refused: string | null } | null;
  releaseGuard(): void;
}

export interface PresenceDatabase {
  /**
   * This thread's connections, one pool per part (on a server): a reaper's expiry
   * transaction or listing of every cell never holds the connection a heartbeat needs,
   * and the syncer (in the topology worker) has a pool of its own there.
   */
  registrar: Db;
  reaper: Db;
  /** How another thread (the topology worker's syncer) reaches the same database. */
  forWorker: { url: string } | { connect: () => MessagePort };
  close(): Promise<void>;
}

/**
 * The presence database: the server in `database.url`, or the embedded PGlite in its own
 * thread. Returns at once: PGlite opens in the background (statements wait for it).
 */
export async function openPresenceDb(config: PresenceConfig, logger: Logger): Promise<PresenceDatabase> {
  const { url, embedded_dir: dir } = config.database;
  if (url) {
    logger.info({ database: redactUrl(url) }, 'presence database');
    // Loaded only for a server: a daemon on the embedded database never loads `pg`.
    const { openPgDb, POOLS } = await import('./pg-db.ts');
    const registrar = openPgDb(url, logger, POOLS.registrar);
    const reaper = openPgDb(url, logger, POOLS.reaper);
    const close = async () => {
      await Promise.all([registrar.close(), reaper.close()]);
    };
    return { registrar, reaper, forWorker: { url }, close };
  }
  const embedded = startEmbeddedDb({ dir }, logger);
  embedded.ready.then(
    () => logger.info({ database: `embedded ${dir}` }, 'presence database open'),
    (err: unknown) => logger.error({ err: errorMessage(err) }, 'the embedded presence database did not open; DNS keeps answering from the file'),
  );
  // One embedded engine runs one statement at a time whatever the pools: both parts share it.
  return {
    registrar: embedded.db,
    reaper: embedded.db,
    forWorker: { connect: () => embedded.connect() },
    async close() {
      await embedded.db.close();
      await embedded.stop();
    },
  };
}

export interface PresenceOptions {
  config: PresenceConfig;
  logger: Logger;
  metrics: Registry;
  admin: AdminServer | null;
  /** The registrar's and the reaper's pools (see PresenceDatabase). */
  db: Pick<PresenceDatabase, 'registrar' | 'reaper'>;
  /** This node's registrations; required when the registrar is on. */
  registrations: RegistrationSource | null;
  /** The syncer (in the topology worker): its status, and the operator's guard release. */
  sync: SyncerLink | null;
  clock?: Clock;
}

export interface Presence {
  /** The shared tables, for the operator's views (GET /v1/cells). */
  store: PresenceStore;
  /** This node's cell, when the registrar runs. */
  cellId: string | null;
  reaper: ReaperStatus | null;
  /** Shutdown: releases the reaper lock and deregisters this cell (its instances tombstoned). */
  stop(): Promise<void>;
}

/** Starts whichever of registrar and reaper the config enables, and the operator's endpoints. */
export function startPresence(options: PresenceOptions): Presence {
  const { config, logger, metrics, admin, db, sync } = options;
  const clock = options.clock ?? systemClock;
  const log = logger.child({ module: 'presence' });
  // A database that is down (or still opening) at start must not stop DNS from serving the
  // file: migrations run in the background and are retried by the pieces' first passes.
  let migrated = false;
  const ensureSchema = async () => {
    if (migrated) return;
    await migrate(db.registrar);
    migrated = true;
  };
  ensureSchema().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'cannot migrate the presence schema yet (database down?); will retry'));
  const store = new PresenceStore(db.registrar, ensureSchema);
  const reaperStore = new PresenceStore(db.reaper, ensureSchema);
  const ttlMs = config.registrar.ttl * 1000;

  let registrar: Registrar | null = null;
  const cellId = config.registrar.enabled ? config.registrar.cell_id ?? hostname() : null;
  if (cellId !== null) {
    if (!options.registrations) throw new PresenceError('REGISTRATIONS_MISSING', 'registrar.enabled needs the registrations module (registrations.dir) to be running');
    registrar = new Registrar({
      store, source: options.registrations, cellId, address: config.registrar.address ?? null,
      ttlMs, clock, logger: log.child({ part: 'registrar' }), metrics,
    });
  }
  const reaper = config.reaper.enabled
    ? new Reaper({
        store: reaperStore, owner: registrar?.owner ?? randomUUID(), lockTtlMs: ttlMs, maxExpireFraction: config.reaper.max_expire_fraction,
        guardHold: config.reaper.guard_hold, clock, logger: log.child({ part: 'reaper' }), metrics,
      })
    : null;

  if (sync) {
    admin?.addReadinessCheck('presence', () => {
      // Stale is a degraded state, not an outage: DNS answers from the file meanwhile.
      const status = sync.status();
      if (!status) return { ready: true, detail: { state: 'starting' } };
      return { ready: true, detail: { ...status, state: status.refused ? 'refused' : status.stale ? 'stale' : 'fresh' } };
    });
  }
  admin?.route('/v1/reaper', (req) => {
    if (req.method === 'GET' && req.params.length === 0) return { status: 200, body: { reaper: reaper?.status() ?? null, sync: sync?.status() ?? null } };
    if (req.method === 'POST' && req.params[0] === 'release-guard') {
      reaper?.releaseGuard();
      sync?.releaseGuard();
      log.warn('operator released the mass-expiry guard');
      return { status: 200, body: { released: true } };
    }
    return { status: 404, body: { error: 'use GET /v1/reaper or POST /v1/reaper/release-guard' } };
  });

  registrar?.start();
  reaper?.start();
  return {
    store,
    cellId,
    get reaper() {
      return reaper?.status() ?? null;
    },
    async stop() {
      await Promise.all([registrar?.deregister(), reaper?.stop()]);
    },
  };
}
