// cli: the `presence-dns` command line (node:util parseArgs). `start` runs the daemon
// (handed in by main.ts); every other subcommand is a client: `validate-config` reads a
// file, `instances|register|deregister|records|status|cells` call a daemon's admin API,
// `lookup` asks its DNS. Exit codes: 0 ok, 1 failed or not found, 2 usage.
import { ConfigError } from '../config/index.ts';
import type { Serve } from './daemon.ts';
import { CliFailure, parse, processIo, UsageError, type CliIo, type Command } from './io.ts';

export { type CliIo } from './io.ts';
export { type Serve } from './daemon.ts';

export const USAGE = `usage: presence-dns COMMAND [options]    (presence-dns COMMAND --help for each)
  presence-dns [start] [--config FILE] [--set key.path=value ...]   run the daemon
  presence-dns validate-config FILE          check a config without starting
  presence-dns register FILE|-               register instances on a daemon (admin API)
  presence-dns deregister ID                 remove an instance registered through the API
  presence-dns instances list|get ID|put FILE|-|delete ID
  presence-dns records [--group G] [--deployment D] [--health H] ...   what DNS answers from
  presence-dns status                        revision, staleness, database, reaper lock, cell, routes
  presence-dns cells                         cells with heartbeat age (like consul members)
  presence-dns lookup NAME [TYPE] [--server HOST:PORT]   ask the daemon's DNS, like dig +short
clients of a daemon take --admin URL, --token T (env PRESENCE_DNS_ADMIN_TOKEN), --config FILE, --json`;

/**
 * Each subcommand, loaded when it is the one asked for: the daemon (`start`) loads none of
 * the clients' modules (registration validation, the inspect and DNS clients).
 */
function commands(serve: Serve): Record<string, () => Promise<Command>> {
  return {
    start: async () => (await import('./daemon.ts')).startCommand(serve),
    'validate-config': async () => (await import('./daemon.ts')).validateConfigCommand,
    register: async () => (await import('./instances.ts')).registerCommand,
    deregister: async () => (await import('./instances.ts')).deregisterCommand,
    instances: async () => (await import('./instances.ts')).instancesCommand,
    records: async () => (await import('./inspect.ts')).recordsCommand,
    status: async () => (await import('./inspect.ts')).statusCommand,
    cells: async () => (await import('./inspect.ts')).cellsCommand,
    lookup: async () => (await import('./lookup.ts')).lookupCommand,
  };
}

/** A registration refused (thrown by the registration commands): told like any failure. */
const isRegistrationError = (err: unknown): err is Error => err instanceof Error && (err as { code?: unknown }).code === 'INVALID_REGISTRATION';

export async function runCli(argv: string[], serve: Serve, io: CliIo = processIo): Promise<number> {
  const known = commands(serve);
  const first = argv.at(0);
  if (first === '--help' || first === '-h' || first === 'help') {
    io.out(`${USAGE}\n`);
    return 0;
  }
  // No subcommand (nothing, or flags first) means start, as `presence-dns --config FILE`.
  const named = first !== undefined && !first.startsWith('-');
  const load = named ? (Object.hasOwn(known, first) ? known[first] : undefined) : known.start;
  if (!load) {
    io.err(`presence-dns: unknown command "${first}"\n${USAGE}\n`);
    return 2;
  }
  const command = await load();
  const prefix = `presence-dns ${command.name}`;
  try {
    const parsed = parse(named ? argv.slice(1) : argv, command.options);
    if (parsed.values.help) {
      io.out(`${command.usage}\n`);
      return 0;
    }
    return await command.run(parsed, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`${prefix}: ${err.message}\n${command.usage}\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.err(`${prefix}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof CliFailure || isRegistrationError(err)) {
      io.err(`${prefix}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
