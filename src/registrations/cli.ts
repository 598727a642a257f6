// `presence-dns instances …`: a thin client of the admin API's /v1/instances. Entries
// to put are validated locally first, so a file with a bad entry sends nothing.
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig } from '../config/index.ts';
import { INSTANCES_PATH } from './api.ts';
import { firstLine, isMapping, parseRegistration, RegistrationError } from './validate.ts';
import { parseStructured } from '../util/structured-file.ts';

export const INSTANCES_USAGE = `usage:
  presence-dns instances list [--json]
  presence-dns instances get ID
  presence-dns instances put FILE|-        (one entry, or a file {instances: [...]}; YAML or JSON)
  presence-dns instances delete ID
options:
  --admin URL      the daemon's admin API (default http://127.0.0.1:8053, or from --config)
  --config FILE    read admin.address, admin.port and admin.token from the daemon's config
  --token T        bearer token (default: env PRESENCE_DNS_ADMIN_TOKEN)`;

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Promise<string>;
  env: NodeJS.ProcessEnv;
}

const processIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
  env: process.env,
};

class UsageError extends Error {}
/** A failure to report in one line (unreachable daemon, API error, unreadable file). */
class CliFailure extends Error {}

interface CliArgs {
  command: 'list' | 'get' | 'put' | 'delete';
  arg: string | null;
  admin: string;
  token: string | undefined;
  json: boolean;
}

function hostForUrl(address: string): string {
  const host = address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '::1' : address;
  return host.includes(':') ? `[${host}]` : host;
}

function parseCliArgs(argv: string[], env: NodeJS.ProcessEnv): CliArgs {
  const positional: string[] = [];
  let admin: string | null = null;
  let token: string | undefined;
  let configFile: string | null = null;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    if (flag === '--admin') admin = value();
    else if (flag === '--token') token = value();
    else if (flag === '--config' || flag === '-c') configFile = value();
    else if (flag === '--json') json = true;
    else if (flag.startsWith('-') && flag !== '-') throw new UsageError(`unknown flag "${flag}"`);
    else positional.push(flag);
  }
  if (configFile) {
    // loadConfig layers PRESENCE_DNS_* over the file, as the daemon itself does.
    const { config } = loadConfig({ file: configFile, env });
    admin ??= `http://${hostForUrl(config.admin.address)}:${config.admin.port}`;
    token ??= config.admin.token;
  }
  token ||= env.PRESENCE_DNS_ADMIN_TOKEN || undefined;
  const [command, arg, extra] = positional;
  if (command !== 'list' && command !== 'get' && command !== 'put' && command !== 'delete') {
    throw new UsageError(command ? `unknown instances command "${command}"` : 'an instances command is needed');
  }
  const wantsArg = command !== 'list';
  if (wantsArg && arg === undefined) throw new UsageError(`instances ${command} needs ${command === 'put' ? 'a FILE (or - for stdin)' : 'an ID'}`);
  if ((!wantsArg && arg !== undefined) || extra !== undefined) throw new UsageError(`unexpected argument "${wantsArg ? extra : arg}"`);
  return { command, arg: arg ?? null, admin: (admin ?? 'http://127.0.0.1:8053').replace(/\/+$/, ''), token, json };
}

/** Entries of a put: a file `{instances: [...]}` or one entry; all validated before any is sent. */
function entriesToPut(source: string, text: string): Array<{ id: string; entry: Record<string, unknown> }> {
  let doc: unknown;
  try {
    doc = parseStructured(source, text);
  } catch (err) {
    throw new RegistrationError(source, '(file)', `does not parse: ${firstLine(err)}`);
  }
  const list: unknown[] = isMapping(doc) && Array.isArray(doc.instances) && Object.keys(doc).length === 1 ? doc.instances : [doc];
  return list.map((entry, i) => {
    const where = entry === doc ? source : `${source}: instances[${i}]`;
    const { id } = parseRegistration(entry, where);
    return { id, entry: entry as Record<string, unknown> };
  });
}

interface ApiAnswer {
  status: number;
  body: unknown;
}

async function call(args: CliArgs, method: string, path: string, body?: unknown): Promise<ApiAnswer> {
  const headers: Record<string, string> = {};
  if (args.token) headers.authorization = `Bearer ${args.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`${args.admin}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new CliFailure(`cannot reach the admin API at ${args.admin}: ${cause?.code ?? cause?.message ?? (err as Error).message} (is the daemon running? see --admin / --config)`);
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: shown as text
  }
  if (res.status >= 400) {
    const detail = isMapping(parsed) && typeof parsed.error === 'string' ? parsed.error : text.trim();
    const field = isMapping(parsed) && typeof parsed.field === 'string' ? ` (field: ${parsed.field})` : '';
    throw new CliFailure(`${method} ${path}: ${res.status}: ${detail}${field}`);
  }
  return { status: res.status, body: parsed };
}

function readSource(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliFailure(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function table(body: unknown): string {
  const instances = isMapping(body) && Array.isArray(body.instances) ? body.instances : [];
  const rows = [['ID', 'GROUP', 'NETWORK', 'DEPLOYMENT', 'IP', 'HEALTH', 'ORIGIN']];
  for (const item of instances) {
    if (!isMapping(item) || !isMapping(item.instance) || !isMapping(item.origin)) continue;
    const i = item.instance;
    const origin = item.origin.kind === 'file' ? `file ${String(item.origin.path)}` : 'api';
    rows.push([i.id, i.group, i.network, i.deployment, i.ip, i.health, origin].map(String));
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')).join('\n') + '\n';
}

export async function runInstancesCli(argv: string[], io: CliIo = processIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(`${INSTANCES_USAGE}\n`);
    return 0;
  }
  let args: CliArgs;
  try {
    args = parseCliArgs(argv, io.env);
  } catch (err) {
    if (!(err instanceof UsageError || err instanceof ConfigError)) throw err;
    io.err(`presence-dns instances: ${err.message}\n${INSTANCES_USAGE}\n`);
    return 2;
  }
  const path = (id: string) => `${INSTANCES_PATH}/${encodeURIComponent(id)}`;
  try {
    switch (args.command) {
      case 'list': {
        const { body } = await call(args, 'GET', INSTANCES_PATH);
        io.out(args.json ? `${JSON.stringify(body, null, 2)}\n` : table(body));
        break;
      }
      case 'get':
        io.out(`${JSON.stringify((await call(args, 'GET', path(args.arg!))).body, null, 2)}\n`);
        break;
      case 'put': {
        const source = args.arg!;
        const text = source === '-' ? await io.readStdin() : readSource(source);
        for (const { id, entry } of entriesToPut(source === '-' ? '(stdin)' : source, text)) {
          await call(args, 'PUT', path(id), entry);
          io.out(`registered ${id}\n`);
        }
        break;
      }
      case 'delete':
        await call(args, 'DELETE', path(args.arg!));
        io.out(`deleted ${args.arg!}\n`);
        break;
    }
    return 0;
  } catch (err) {
    if (err instanceof CliFailure || err instanceof RegistrationError) {
      io.err(`presence-dns instances: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
