// Entry point: hands the command line to the CLI (src/cli/) and, for `start`, wires the
// modules together.
// Each module owns its own folder; nothing here knows how they work inside. A module the
// config does not switch on is never imported (the forwarder, the route emitter and its NATS
// client, the presence modules and their database adapters, registrations, health checks),
// so a DNS-only sidecar holds the DNS server, the control plane's host, the admin API and
// nothing else: memory is paid once per node.
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdminServer, Registry } from './admin/index.ts';
import { runCli } from './cli/index.ts';
import { systemClock } from './clock.ts';
import { changedKeys, ConfigError, loadConfigApart, withKeys, type Config, type LoadedConfig, type LoadOptions } from './config/index.ts';
import { allocateAnswerCache, dnsThreads, DnsHandler, startDns, TopologyStore } from './dns/index.ts';
import { createLogger, type Logger } from './log.ts';
import { ControlPlane } from './control/host.ts';
import { guardProcess, reportBackgroundFailures } from './util/background.ts';
import { threadHeaps } from './util/worker-thread.ts';

export interface Daemon {
  dnsPorts: number[];
  adminPort: number;
  /**
   * SIGHUP: re-reads the topology file, aliases and registrations, applies the config keys
   * that can change live; resolves to the changed keys that need a restart.
   */
  reload(next: Config): Promise<string[]>;
  stop(): Promise<void>;
}

/** Config keys whose new values take effect live on SIGHUP; every other changed key waits for a restart. */
const LIVE_KEYS = new Set(['log.level', 'forward.upstreams']);

export async function startDaemon(config: Config, logger: Logger): Promise<Daemon> {
  const startedAt = Date.now();
  const metrics = new Registry();
  metrics.collectProcessMetrics();
  // What each thread's V8 heap holds: the first thing to read when RSS grows.
  metrics.gauge('presence_dns_thread_heap_bytes', 'V8 heap of each thread (main, topology, dns-N, pglite): bytes in use, reserved, and held by its objects outside the heap (array buffers).', {
    labelNames: ['thread', 'kind'],
    collectAll: async () => (await threadHeaps()).flatMap((h) => [
      [{ thread: h.thread, kind: 'used' }, h.used], [{ thread: h.thread, kind: 'total' }, h.total], [{ thread: h.thread, kind: 'external' }, h.external],
    ] as Array<[Record<string, string>, number]>),
  });
  // Failures of unawaited work, and anything that reaches the process level: logged and counted, never fatal.
  const backgroundErrors = metrics.counter('presence_dns_background_errors_total', 'Background work that failed (scheduled passes, prefetches, probes, reconnects) and errors that reached the process level, by task.', { labelNames: ['task'] });
  const unreport = reportBackgroundFailures(logger, (task) => backgroundErrors.inc({ task }));
  const unguard = guardProcess();
  // The database is opened (PGlite: in a thread of its own, in the background) before the
  // topology worker starts, which reaches it for the syncer.
  const usesDb = config.registrar.enabled || config.reaper.enabled || config.sync.enabled;
  const presenceModule = usesDb ? await import('./presence/index.ts') : null;
  const presenceDb = presenceModule ? await presenceModule.openPresenceDb(config, logger.child({ module: 'presence' })) : null;
  const control = new ControlPlane({
    file: config.topology.file,
    aliasesDir: config.dns.aliases_dir,
    domains: config.dns.domains,
    logLevel: config.log.level,
    maxFileBytes: config.topology.max_file_bytes,
    inlineMaxBytes: config.topology.inline_max_bytes > 0 ? config.topology.inline_max_bytes : undefined,
    logger: logger.child({ module: 'topology' }),
    metrics,
    sync: config.sync.enabled && presenceDb
      ? {
          intervalMs: config.sync.interval * 1000, ttlMs: config.registrar.ttl * 1000, maxDropFraction: config.reaper.max_expire_fraction,
          guardHold: config.reaper.guard_hold,
          database: config.sync.database_url ? { url: config.sync.database_url } : presenceDb.forWorker,
          fanout: config.sync.nats_url === undefined ? null : {
            natsUrl: config.sync.nats_url, prefix: config.sync.nats_prefix, publisher: config.sync.publisher,
            snapshotEvery: config.sync.snapshot_every, snapshotSlots: config.sync.snapshot_slots, owner: randomUUID(),
          },
        }
      : null,
  });
  const topology = new TopologyStore({ domains: config.dns.domains, control, logger: logger.child({ module: 'topology' }), metrics });

  // The syncer writes the topology file into this directory; it must exist before it is watched.
  if (config.sync.enabled) mkdirSync(dirname(config.topology.file), { recursive: true });
  await control.start();

  const handler = new DnsHandler({
    ttl: config.dns.ttl,
    negativeTtl: config.dns.negative_ttl ?? config.dns.ttl,
    maxUdpSize: config.dns.max_udp_size,
    answerCacheBytes: config.dns.answer_cache_bytes,
    // One cache for every DNS thread: the main thread writes its log 0, each DNS worker thread one more.
    answerCache: config.dns.answer_cache_bytes > 0
      ? { buffer: allocateAnswerCache(config.dns.answer_cache_bytes, dnsThreads(config.dns.workers)), log: 0 }
      : undefined,
    metrics,
    currentIndex: () => topology.current,
  });
  topology.onChange((change, stamp) => handler.topologyChanged(change, stamp));
  const forwarder = config.forward.enabled
    ? new (await import('./forward/index.ts')).Forwarder({
        config: config.forward,
        listen: config.dns.listen,
        maxUdpSize: config.dns.max_udp_size,
        metrics,
        logger: logger.child({ module: 'forward' }),
      })
    : null;
  await forwarder?.start();
  handler.next = forwarder;
  const dns = await startDns({
    config: config.dns, handler, topology, recursionAvailable: () => forwarder?.recursionAvailable ?? false,
    logLevel: config.log.level, logger: logger.child({ module: 'dns' }), metrics,
  });

  const admin = config.admin.enabled
    ? new AdminServer({ ...config.admin, metrics, logger: logger.child({ module: 'admin' }) })
    : null;
  admin?.addReadinessCheck('topology', () => {
    const { loaded, lastError, ...detail } = topology.status();
    return { ready: loaded, detail: loaded ? { ...detail, lastError } : { ...detail, reason: lastError } };
  });
  // Up before the database opens (PGlite takes seconds): /health answers while DNS already does.
  // Modules mount their routes and readiness checks as they start; requests look them up each time.
  await admin?.start();
  // This node's instances: the source the registrar and the route emitter are handed.
  const registrationsModule = config.registrar.enabled || config.routes.enabled ? await import('./registrations/index.ts') : null;
  const registrations = registrationsModule
    ? new registrationsModule.RegistrationSet({ dir: config.registrations.dir, logger: logger.child({ module: 'registrations' }), metrics })
    : null;
  await registrations?.start();
  if (registrationsModule && registrations && admin) registrationsModule.mountInstancesApi(admin, registrations);
  const routes = config.routes.enabled && registrations
    ? (await import('./routes/index.ts')).startRoutes({ config: config.routes, registrations, logger: logger.child({ module: 'routes' }), metrics })
    : null;
  // Local health checks: the registrar is handed the registrations with their measured health.
  const checks = registrations && config.registrar.enabled
    ? new (await import('./checks/index.ts')).HealthChecks({ source: registrations, clock: systemClock, logger: logger.child({ module: 'checks' }), metrics })
    : null;
  checks?.start();
  // Presence in the database (registrar, reaper); a database that is down never stops DNS.
  const presence = presenceModule && presenceDb
    ? presenceModule.startPresence({
        config, logger, metrics, admin, registrations: checks ?? registrations, db: presenceDb,
        sync: config.sync.enabled ? { status: () => topology.syncStatus(), releaseGuard: () => control.releaseGuard() } : null,
      })
    : null;

  if (admin) {
    (await import('./inspect/index.ts')).mountInspectApi(admin, {
      config, startedAt, dns: { listen: dns.bound, threads: dns.threads }, topology, presence, routes, registrations, checks: checks ? () => checks.status() : null,
    });
  }

  const dnsPorts = [...new Set(dns.bound.map((b) => b.port))];
  logger.info({ dns: dns.bound, dnsThreads: dns.threads, admin: admin ? `${config.admin.address}:${admin.port}` : null }, 'presence-dns started');
  let current = config;
  return {
    dnsPorts,
    adminPort: admin?.port ?? 0,
    async reload(next) {
      const changed = changedKeys(current, next);
      const live = changed.filter((key) => LIVE_KEYS.has(key));
      current = withKeys(current, next, live);
      logger.level = current.log.level;
      control.reload();
      registrations?.reload();
      // Also with no key changed: upstreams from resolv.conf are read again.
      await forwarder?.reload(current.forward.upstreams);
      return changed.filter((key) => !LIVE_KEYS.has(key));
    },
    async stop() {
      // Bounded, so that SIGTERM exits within a few seconds even with the database or a
      // thread stuck: what has not finished by its deadline is left to the process exit.
      // The deadlines add up to 4.5 s: the process exits 0 within 5 s whatever hangs.
      await within(dns.stop(), 1000, 'answering the queries in flight', logger);
      // The syncer stops before this cell deregisters, so this node's own topology file keeps
      // its instances: a restart with the database down answers them from the file at once.
      await within(Promise.all([admin?.stop(), control.stop(), forwarder?.stop(), registrations?.stop(), checks?.stop(), routes?.stop()]), 1500, 'stopping the modules', logger);
      // Releases the reaper lock and deregisters this cell (tombstones its instances).
      await within(presence?.stop() ?? Promise.resolve(), 1200, 'leaving the presence database', logger);
      await within(presenceDb?.close() ?? Promise.resolve(), 800, 'closing the presence database', logger);
      unguard();
      unreport();
    },
  };
}

/** Waits for `work` at most `ms`; a failure or a timeout is logged, not thrown. */
async function within(work: Promise<unknown>, ms: number, what: string, logger: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  try {
    if ((await Promise.race([work, late])) === 'late') logger.warn({ waitedMs: ms }, `${what} took too long; going on without it`);
  } catch (err) {
    logger.warn({ err: (err as Error).message }, `${what} failed`);
  } finally {
    clearTimeout(timer);
  }
}

export function main(argv: string[]): Promise<number> {
  return runCli(argv, serve);
}

/** `presence-dns start`: the daemon in the foreground until SIGTERM or SIGINT; SIGHUP reloads. */
async function serve(loaded: LoadedConfig, source: LoadOptions): Promise<number> {
  const logger = createLogger(loaded.config.log.level);
  const daemon = await startDaemon(loaded.config, logger);
  process.on('SIGHUP', () => {
    loadConfigApart(source).then(
      ({ config: next }) => daemon.reload(next).then(
        (restart) => logger.info({ needsRestart: restart }, restart.length ? 'config reloaded; these keys change only at the next restart' : 'config reloaded'),
        (err: Error) => logger.error({ err: err.message }, 'SIGHUP: reloading the forwarder upstreams failed'),
      ),
      (err: Error) => {
        if (err instanceof ConfigError) logger.error({ err: err.message }, 'SIGHUP: the config file is invalid; keeping the running config');
        else logger.error({ err: err.message }, 'SIGHUP: cannot read the config; keeping the running config');
      },
    );
  });
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
  await daemon.stop();
  logger.info('stopped');
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      process.stderr.write(`presence-dns: ${err.stack ?? err.message}\n`);
      process.exit(1);
    },
  );
}
