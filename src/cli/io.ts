// What every subcommand shares: the process's streams (replaceable in tests), the two
// kinds of failure (usage → exit 2; anything else worth one line → exit 1), the common
// flags, the admin API client and the table printer.
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import type { Config } from '../config/index.ts';
import { isMapping, readTextFile } from '../util/structured-file.ts';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Promise<string>;
  env: NodeJS.ProcessEnv;
}

export const processIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
  env: process.env,
};

/** Wrong use of the command line: exit 2 with the usage. */
export class UsageError extends Error {}
/** A failure to report in one line (unreachable daemon, API error, unreadable file, no answer): exit 1. */
export class CliFailure extends Error {}

export type Values = Record<string, string | boolean | Array<string | boolean> | undefined>;

export interface Parsed {
  values: Values;
  positionals: string[];
}

/** Flags of the clients of a running daemon's admin API. */
export const ADMIN_OPTIONS = {
  admin: { type: 'string' },
  token: { type: 'string' },
  config: { type: 'string', short: 'c' },
  json: { type: 'boolean' },
} as const satisfies ParseArgsOptionsConfig;

export const ADMIN_OPTIONS_USAGE = `  --admin URL      the daemon's admin API (default http://127.0.0.1:8053, or from --config)
  --config FILE    take admin.address, admin.port and admin.token from the daemon's config
  --token T        bearer token (default: env PRESENCE_DNS_ADMIN_TOKEN)
  --json           print JSON for scripts instead of text`;

/** node:util parseArgs, strict, with its errors turned into usage errors in our words. */
export function parse(argv: string[], options: ParseArgsOptionsConfig): Parsed {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    return { values, positionals };
  } catch (err) {
    const e = err as Error & { code?: string };
    const flag = /'([^']+)'/.exec(e.message)?.[1] ?? '';
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown flag "${flag.split(' ')[0]}"`);
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw new UsageError(e.message.replace(/^Option /, 'flag '));
    throw err;
  }
}

export function text(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * The positionals when there are as many as `names` (the last `optional` of them may be
 * left out); else a usage error naming what is missing or extra.
 */
export function expectPositionals(command: string, given: string[], names: string[], optional = 0): string[] {
  if (given.length < names.length - optional) throw new UsageError(`${command} needs ${names[given.length]}`);
  if (given.length > names.length) throw new UsageError(`unexpected argument "${given[names.length]}"`);
  return given;
}

export async function readConfigFor(values: Values, env: NodeJS.ProcessEnv): Promise<Config | null> {
  const file = text(values, 'config');
  if (!file) return null;
  // loadConfig layers PRESENCE_DNS_* over the file, as the daemon itself does.
  const { loadConfig } = await import('../config/load.ts');
  return loadConfig({ file, env }).config;
}

/** A listen address as a client reaches it: a wildcard means this host's loopback. */
export function reachable(address: string): string {
  return address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '::1' : address;
}

export interface ApiAnswer {
  status: number;
  body: unknown;
}

/** How long a command waits for the admin API: a daemon answers at once (from memory), so longer means it is stuck. */
const REQUEST_TIMEOUT_MS = 10_000;

/** A client of one daemon's admin API: --admin (or --config, or the default) and --token (or --config, or the env). */
export class AdminClient {
  readonly url: string;
  private readonly token: string | undefined;

  /** The client that --admin, --config or the default names, with its token. */
  static async for(values: Values, env: NodeJS.ProcessEnv): Promise<AdminClient> {
    return new AdminClient(values, env, await readConfigFor(values, env));
  }

  private constructor(values: Values, env: NodeJS.ProcessEnv, config: Config | null) {
    let url = text(values, 'admin');
    if (!url && config) {
      const host = reachable(config.admin.address);
      url = `http://${host.includes(':') ? `[${host}]` : host}:${config.admin.port}`;
    }
    this.url = (url ?? 'http://127.0.0.1:8053').replace(/\/+$/, '');
    this.token = text(values, 'token') ?? config?.admin.token ?? (env.PRESENCE_DNS_ADMIN_TOKEN || undefined);
  }

  async call(method: string, path: string, body?: unknown): Promise<ApiAnswer> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    let answer: string;
    try {
      res = await fetch(`${this.url}${path}`, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      answer = await res.text();
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') {
        throw new CliFailure(`the admin API at ${this.url} did not answer ${method} ${path} within ${REQUEST_TIMEOUT_MS / 1000} s (is the daemon stuck? see its log)`);
      }
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliFailure(`cannot reach the admin API at ${this.url}: ${cause?.code ?? cause?.message ?? (err as Error).message} (is the daemon running? see --admin / --config)`);
    }
    let parsed: unknown = answer;
    try {
      parsed = JSON.parse(answer);
    } catch {
      // not JSON: shown as text
    }
    if (res.status >= 400) {
      const detail = isMapping(parsed) && typeof parsed.error === 'string' ? parsed.error : answer.trim();
      const field = isMapping(parsed) && typeof parsed.field === 'string' ? ` (field: ${parsed.field})` : '';
      throw new CliFailure(`${method} ${path}: ${res.status}: ${detail}${field}`);
    }
    return { status: res.status, body: parsed };
  }
}

export function readSource(file: string): string {
  try {
    return readTextFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliFailure(code === 'EFBIG' ? (err as Error).message : `cannot read ${file}: ${code ?? (err as Error).message}`);
  }
}

export function printJson(io: CliIo, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** Rows as columns padded to the widest cell (the first row is the header); the last column is not padded. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ').trimEnd()).join('\n') + '\n';
}

/** A subcommand: its usage (shown by --help and after a usage error), its flags, and what it does (resolves to the exit code). */
export interface Command {
  name: string;
  usage: string;
  options: ParseArgsOptionsConfig;
  run(parsed: Parsed, io: CliIo): Promise<number>;
}
