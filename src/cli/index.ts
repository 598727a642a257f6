// cli: the `presence-dns` command line (node:util parseArgs). `start` runs the daemon
// (handed in by main.ts); every other subcommand is a client: `validate-config` reads a
// file, `instances|register|deregister|records|status|cells` call a daemon's admin API,
// `lookup` asks its DNS. Exit codes: 0 ok, 1 failed or not found, 2 usage.
import { ConfigError } from '../config/index.ts';
import { RegistrationError } from '../registrations/validate.ts';
import { startCommand, validateConfigCommand, type Serve } from './daemon.ts';
import { cellsCommand, recordsCommand, statusCommand } from './inspect.ts';
import { deregisterCommand, instancesCommand, registerCommand } from './instances.ts';
import { CliFailure, parse, processIo, UsageError, type CliIo, type Command } from './io.ts';
import { lookupCommand } from './lookup.ts';

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

export async function runCli(argv: string[], serve: Serve, io: CliIo = processIo): Promise<number> {
  const commands: Command[] = [
    startCommand(serve), validateConfigCommand, registerCommand, deregisterCommand, instancesCommand,
    recordsCommand, statusCommand, cellsCommand, lookupCommand,
  ];
  const [first] = argv;
  if (first === '--help' || first === '-h' || first === 'help') {
    io.out(`${USAGE}\n`);
    return 0;
  }
  // No subcommand (nothing, or flags first) means start, as `presence-dns --config FILE`.
  const named = first !== undefined && !first.startsWith('-');
  const command = named ? commands.find((c) => c.name === first) : commands[0];
  if (!command) {
    io.err(`presence-dns: unknown command "${first}"\n${USAGE}\n`);
    return 2;
  }
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
    if (err instanceof CliFailure || err instanceof RegistrationError) {
      io.err(`${prefix}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
