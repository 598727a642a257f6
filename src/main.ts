// Entry point: parses the command line, loads the config, and wires the modules together.
// Each module owns its own folder; nothing here knows how they work inside. Modules with
// heavy dependencies (the forwarder, the route emitter and its NATS client; the database
// adapters, see presence/db.ts) are imported only when the config switches them on, so a
// DNS-only sidecar never loads them.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdminServer, Registry } from './admin/index.ts';
import { ConfigError, loadConfig, type Config } from './config/index.ts';
import { DnsHandler, startDns } from './dns/index.ts';
import { createLogger, type Logger } from './log.ts';
import { openPresenceDb, startPresence } from './presence/index.ts';
import { mountInstancesApi, RegistrationSet, runInstancesCli } from './registrations/index.ts';
import { TopologyStore } from './topology/index.ts';
import { guardProcess, reportBackgroundFailures } from './util/background.ts';

export interface Daemon {
  dnsPorts: number[];
  adminPort: number;
  /** Applies what can change without a restart; returns the config sections that need one. */
  reload(next: Config): string[];
  stop(): Promise<void>;
}

/** Sections whose new values take effect live on SIGHUP; everything else waits for a restart. */
const LIVE_SECTIONS = new Set(['log']);

export async function startDaemon(config: Config, logger: Logger): Promise<Daemon> {
  const metrics = new Registry();
  metrics.collectProcessMetrics();
  // Failures of unawaited work, and anything that reaches the process level: logged and counted, never fatal.
  const backgroundErrors = metrics.counter('presence_dns_background_errors_total', 'Background work that failed (scheduled passes, prefetches, probes, reconnects) and errors that reached the process level, by task.', { labelNames: ['task'] });
  const unreport = reportBackgroundFailures(logger, (task) => backgroundErrors.inc({ task }));
  const unguard = guardProcess();
  // The database is opened (PGlite: in a thread of its own, in the background) before the
  // topology worker starts, which reaches it for the syncer.
  const usesDb = config.registrar.enabled || config.reaper.enabled || config.sync.enabled;
  const presenceDb = usesDb ? await openPresenceDb(config, logger.child({ module: 'presence' })) : null;
  const topology = new TopologyStore({
    file: config.topology.file,
    aliasesDir: config.dns.aliases_dir,
    domains: config.dns.domains,
    logLevel: config.log.level,
    logger: logger.child({ module: 'topology' }),
    metrics,
    sync: config.sync.enabled && presenceDb
      ? {
          intervalMs: config.sync.interval * 1000, ttlMs: config.registrar.ttl * 1000, maxDropFraction: config.reaper.max_expire_fraction,
          guardHold: config.reaper.guard_hold, database: presenceDb.forWorker,
        }
      : null,
  });
  // The syncer writes the topology file into this directory; it must exist before it is watched.
  if (config.sync.enabled) mkdirSync(dirname(config.topology.file), { recursive: true });
  await topology.start();

  const handler = new DnsHandler({
    ttl: config.dns.ttl,
    negativeTtl: config.dns.negative_ttl ?? config.dns.ttl,
    maxUdpSize: config.dns.max_udp_size,
    answerCacheBytes: config.dns.answer_cache_bytes,
    metrics,
    currentIndex: () => topology.current,
  });
  topology.onChange((change) => handler.topologyChanged(change));
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
  const registrations = config.registrar.enabled || config.routes.enabled
    ? new RegistrationSet({ dir: config.registrations.dir, logger: logger.child({ module: 'registrations' }), metrics })
    : null;
  await registrations?.start();
  if (registrations && admin) mountInstancesApi(admin, registrations);
  const routes = config.routes.enabled && registrations
    ? (await import('./routes/index.ts')).startRoutes({ config: config.routes, registrations, logger: logger.child({ module: 'routes' }), metrics })
    : null;
  // Presence in the database (registrar, reaper); a database that is down never stops DNS.
  const presence = presenceDb
    ? startPresence({
        config, logger, metrics, admin, registrations, db: presenceDb,
        sync: config.sync.enabled ? { status: () => topology.syncStatus(), releaseGuard: () => topology.releaseGuard() } : null,
      })
    : null;

  const dnsPorts = [...new Set(dns.bound.map((b) => b.port))];
  logger.info({ dns: dns.bound, dnsThreads: dns.threads, admin: admin ? `${config.admin.address}:${admin.port}` : null }, 'presence-dns started');
  let current = config;
  return {
    dnsPorts,
    adminPort: admin?.port ?? 0,
    reload(next) {
      logger.level = next.log.level;
      topology.reload();
      const restart = (Object.keys(next) as Array<keyof Config>)
        .filter((section) => !LIVE_SECTIONS.has(section) && JSON.stringify(next[section]) !== JSON.stringify(current[section]));
      current = { ...next, ...Object.fromEntries(restart.map((section) => [section, current[section]])) };
      return restart;
    },
    async stop() {
      // Bounded, so that SIGTERM exits within a few seconds even with the database or a
      // thread stuck: what has not finished by its deadline is left to the process exit.
      await within(dns.stop(), 1500, 'answering the queries in flight', logger);
      await within(Promise.all([admin?.stop(), topology.stop(), forwarder?.stop(), registrations?.stop(), routes?.stop(), presence?.stop()]), 2000, 'stopping the modules', logger);
      await within(presenceDb?.close() ?? Promise.resolve(), 1000, 'closing the presence database', logger);
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

const USAGE = `usage:
  presence-dns [start] [--config FILE] [--set key.path=value ...]
  presence-dns validate-config FILE
  presence-dns instances list|get ID|put FILE|-|delete ID [--admin URL] [--config FILE] [--token T]`;

interface Args {
  command: 'start' | 'validate-config' | 'help';
  config: string | null;
  overrides: string[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { command: 'start', config: null, overrides: [] };
  const rest = [...argv];
  if (rest[0] && !rest[0].startsWith('-')) {
    const command = rest.shift()!;
    if (command !== 'start' && command !== 'validate-config') throw new ConfigError(`unknown command "${command}"\n${USAGE}`);
    args.command = command;
    if (command === 'validate-config' && rest[0] && !rest[0].startsWith('-')) args.config = rest.shift()!;
  }
  while (rest.length) {
    const flag = rest.shift()!;
    const value = () => {
      const v = rest.shift();
      if (v === undefined) throw new ConfigError(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    if (flag === '--config' || flag === '-c') args.config = value();
    else if (flag === '--set') args.overrides.push(value());
    else if (flag === '--help' || flag === '-h') args.command = 'help';
    else throw new ConfigError(`unknown flag "${flag}"\n${USAGE}`);
  }
  return args;
}

const DEFAULT_CONFIG = fileURLToPath(new URL('../config/default.yaml', import.meta.url));

export async function main(argv: string[]): Promise<number> {
  // A client of a running daemon's admin API: no config to load, nothing to start.
  if (argv[0] === 'instances') return runInstancesCli(argv.slice(1));
  let args: Args;
  let loaded;
  try {
    args = parseArgs(argv);
    if (args.command === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (args.command === 'validate-config' && !args.config) throw new ConfigError(`validate-config needs a FILE\n${USAGE}`);
    loaded = loadConfig({ file: args.config ?? DEFAULT_CONFIG, env: process.env, overrides: args.overrides });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`presence-dns: ${err.message}\n`);
    return 2;
  }
  if (args.command === 'validate-config') {
    process.stdout.write(`${loaded.file}: configuration is valid\n`);
    return 0;
  }
  const logger = createLogger(loaded.config.log.level);
  const daemon = await startDaemon(loaded.config, logger);
  const source = { file: loaded.file, env: process.env, overrides: args.overrides };
  process.on('SIGHUP', () => {
    try {
      const restart = daemon.reload(loadConfig(source).config);
      logger.info({ needsRestart: restart }, restart.length ? 'config reloaded; some sections change only at the next restart' : 'config reloaded');
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      logger.error({ err: err.message }, 'SIGHUP: the config file is invalid; keeping the running config');
    }
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
