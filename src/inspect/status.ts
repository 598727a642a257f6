// GET /v1/status: one page an operator reads first — the topology in service (revision,
// records, file), how fresh it is against the database, this cell, the reaper lock, the
// route emitter, the registrations and the checks. Read from memory only, so it answers
// at once even with the database down; what a node does not know (no syncer, no checks)
// is null.
import type { PresenceConfig } from '../presence/config.ts';
import type { Presence } from '../presence/index.ts';
import type { RegistrationSetStatus } from '../registrations/index.ts';
import type { RoutesStatus } from '../routes/index.ts';
import type { TopologyStatus } from '../dns/index.ts';
import type { SyncStatus } from '../control/protocol.ts';

export interface StatusSources {
  config: PresenceConfig;
  startedAt: number;
  dns: { listen: Array<{ address: string; port: number; transport: string }>; threads: number };
  topology: { status(): TopologyStatus; syncStatus(): SyncStatus | null };
  presence: Presence | null;
  routes: { status(): RoutesStatus } | null;
  registrations: { status(): RegistrationSetStatus } | null;
  /** The local health checks' states, where that module runs. */
  checks: (() => unknown) | null;
}

export function statusBody(s: StatusSources, now = Date.now()): Record<string, unknown> {
  const topology = s.topology.status();
  const sync = s.config.sync.enabled ? s.topology.syncStatus() : null;
  const { database } = s.config;
  return {
    uptimeSeconds: Math.round((now - s.startedAt) / 1000),
    cell: s.presence?.cellId ?? null,
    revision: topology.version,
    records: topology.records,
    staleSeconds: sync?.staleSeconds ?? null,
    dbUp: sync?.dbUp ?? null,
    reaperLockHolder: s.config.reaper.enabled ? s.presence?.reaper?.holder ?? false : null,
    topology: {
      file: topology.file, loaded: topology.loaded, lastError: topology.lastError, refused: topology.refused,
      writeError: topology.writeError, cacheError: topology.cacheError, journalError: topology.journalError,
      workerUp: topology.workerUp, workerRestarts: topology.workerRestarts,
    },
    database: database.url ? 'server' : database.embedded && s.presence ? 'embedded' : null,
    sync: s.config.sync.enabled ? { interval: s.config.sync.interval, ...(sync ?? { state: 'starting' }) } : null,
    reaper: s.config.reaper.enabled ? { holder: s.presence?.reaper?.holder ?? false, guardHolding: s.presence?.reaper?.guardHolding ?? [] } : null,
    registrations: s.registrations?.status() ?? null,
    routes: s.routes?.status() ?? null,
    checks: s.checks?.() ?? null,
    dns: s.dns,
  };
}
