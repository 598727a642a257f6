// presence: this node's side of the shared presence database (DESIGN §3.3) — the query
// interface and its adapters (a PostgreSQL server via `pg`, or the embedded PGlite), the
// migrations, the registrar (cell + instances + heartbeats), the reaper (SQL lock,
// locket expiry rule, mass-expiry guard) and the syncer (revisions → topology file).
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { AdminServer, Registry } from '../admin/index.ts';
import type { Config } from '../config/index.ts';
import type { Logger } from '../log.ts';
import type { RegistrationSource } from '../registrations/types.ts';
import { systemClock, type Clock } from '../clock.ts';
import { openDb, PresenceError, redactUrl, type Db } from './db.ts';
import { Reaper } from './reaper.ts';
import { Registrar } from './registrar.ts';
import { migrate } from './schema.ts';
import { PresenceStore } from './store.ts';
import { Syncer } from './syncer.ts';

export { PresenceError, openDb, redactUrl, type Db, type Queryable } from './db.ts';
export * from './decisions.ts';
export { migrate } from './schema.ts';
export { PresenceStore, NOTIFY_CHANNEL, type PresenceRecord, type PresenceRow, type WriteResult } from './store.ts';
export { Registrar, type RegistrarOptions } from './registrar.ts';
export { Reaper, REAPER_LOCK, type ReaperOptions, type ReaperStatus } from './reaper.ts';
export { Syncer, type SyncerOptions, type SyncStatus } from './syncer.ts';

export interface PresenceOptions {
  config: Config;
  logger: Logger;
  metrics: Registry;
  admin: AdminServer | null;
  /** This node's registrations; required when the registrar is on. */
  registrations: RegistrationSource | null;
  clock?: Clock;
}

export interface Presence {
  stop(): Promise<void>;
}

/** Opens the database and starts whichever of registrar, reaper and syncer the config enables. */
export async function startPresence(options: PresenceOptions): Promise<Presence | null> {
  const { config, logger, metrics, admin } = options;
  const clock = options.clock ?? systemClock;
  if (!config.registrar.enabled && !config.sync.enabled && !config.reaper.enabled) return null;
  const log = logger.child({ module: 'presence' });
  const db: Db = await openDb({ url: config.database.url, embeddedDir: config.database.embedded_dir, logger: log });
  log.info({ database: config.database.url ? redactUrl(config.database.url) : `embedded ${config.database.embedded_dir}` }, 'presence database');
  // A server that is down at start must not stop DNS from serving the file: migrations
  // are retried by the pieces' first successful pass instead.
  let migrated = false;
  const ensureSchema = async () => {
    if (migrated) return;
    await migrate(db);
    migrated = true;
  };
  await ensureSchema().catch((err: Error) => log.warn({ err: err.message }, 'cannot migrate the presence schema yet (database down?); will retry'));
  const store = new PresenceStore(db, ensureSchema);
  const ttlMs = config.registrar.ttl * 1000;

  let registrar: Registrar | null = null;
  if (config.registrar.enabled) {
    if (!options.registrations) throw new PresenceError('REGISTRATIONS_MISSING', 'registrar.enabled needs the registrations module (registrations.dir) to be running');
    registrar = new Registrar({
      store, source: options.registrations, cellId: config.registrar.cell_id ?? hostname(), address: config.registrar.address ?? null,
      ttlMs, clock, logger: log.child({ part: 'registrar' }), metrics,
    });
  }
  const reaper = config.reaper.enabled
    ? new Reaper({
        store, owner: registrar?.owner ?? randomUUID(), lockTtlMs: ttlMs, maxExpireFraction: config.reaper.max_expire_fraction,
        guardHold: config.reaper.guard_hold, clock, logger: log.child({ part: 'reaper' }), metrics,
      })
    : null;
  const syncer = config.sync.enabled
    ? new Syncer({
        store, file: config.topology.file, intervalMs: config.sync.interval * 1000, ttlMs, maxDropFraction: config.reaper.max_expire_fraction,
        guardHold: config.reaper.guard_hold, clock, logger: log.child({ part: 'syncer' }), metrics,
      })
    : null;

  if (syncer) {
    admin?.addReadinessCheck('presence', () => {
      // Stale is a degraded state, not an outage: DNS answers from the file meanwhile.
      const status = syncer.status();
      return { ready: true, detail: { ...status, state: status.stale ? 'stale' : 'fresh' } };
    });
  }
  admin?.route('/v1/reaper', (req) => {
    if (req.method === 'GET' && req.params.length === 0) return { status: 200, body: { reaper: reaper?.status() ?? null, sync: syncer?.status() ?? null } };
    if (req.method === 'POST' && req.params[0] === 'release-guard') {
      reaper?.releaseGuard();
      syncer?.releaseGuard();
      log.warn('operator released the mass-expiry guard');
      return { status: 200, body: { released: true } };
    }
    return { status: 404, body: { error: 'use GET /v1/reaper or POST /v1/reaper/release-guard' } };
  });

  registrar?.start();
  reaper?.start();
  syncer?.start();
  return {
    async stop() {
      await Promise.all([registrar?.stop(), reaper?.stop(), syncer?.stop()]);
      await db.close().catch((err: Error) => log.warn({ err: err.message }, 'closing the database failed'));
    },
  };
}
