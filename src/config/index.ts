// config: the daemon's configuration — one YAML or JSON file, validated against the schema
// the modules compose (schema.ts), with PRESENCE_DNS_* environment variables and `--set`
// flags on top (load.ts). This module is what the running daemon keeps: the types, the
// error, comparing two configs (SIGHUP), and `loadConfigApart`, which loads and validates in
// a thread that exits when done, so the schema library and the YAML parser never stay in
// the daemon's memory.
import { Worker } from 'node:worker_threads';
import type { Config } from './schema.ts';

export type { Config } from './schema.ts';

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
}

export interface LoadedConfig {
  config: Config;
  /** The file it came from, or null for built-in defaults. */
  file: string | null;
}

export interface LoadOptions {
  file?: string | null;
  env?: NodeJS.ProcessEnv;
  /** `key.path=value` overrides, as from `--set`. */
  overrides?: string[];
}

/** What the loading thread answers: the config, or the error that names the bad key. */
export type LoadAnswer = { ok: true; loaded: LoadedConfig } | { ok: false; message: string; config: boolean };

/**
 * loadConfig (load.ts), run in a thread of its own that exits when done: the same config,
 * or the same ConfigError.
 */
export async function loadConfigApart(options: LoadOptions): Promise<LoadedConfig> {
  const typescript = import.meta.url.endsWith('.ts');
  const worker = new Worker(new URL(`./load-worker${typescript ? '.ts' : '.js'}`, import.meta.url), {
    workerData: options, execArgv: typescript ? ['--import', 'tsx'] : [],
  });
  const answer = await new Promise<LoadAnswer>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the config loading thread exited with ${code} before answering`)));
  });
  await worker.terminate();
  if (answer.ok) return answer.loaded;
  throw answer.config ? new ConfigError(answer.message) : new Error(answer.message);
}

type Tree = Record<string, unknown>;

const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);

export function setPath(tree: Tree, path: string[], value: unknown): void {
  let node = tree;
  for (const key of path.slice(0, -1)) {
    if (!isTree(node[key])) node[key] = {};
    node = node[key] as Tree;
  }
  node[path[path.length - 1]] = value;
}

/** The dotted keys whose values differ between two configs (a list counts as one value). */
export function changedKeys(before: Config, after: Config): string[] {
  const walk = (a: unknown, b: unknown, at: string): string[] => {
    if (isTree(a) && isTree(b)) {
      return [...new Set([...Object.keys(a), ...Object.keys(b)])].flatMap((k) => walk(a[k], b[k], at ? `${at}.${k}` : k));
    }
    return JSON.stringify(a) === JSON.stringify(b) ? [] : [at];
  };
  return walk(before, after, '');
}

/** `base` with the values of `keys` (dotted) taken from `from`. */
export function withKeys(base: Config, from: Config, keys: string[]): Config {
  const out = structuredClone(base) as unknown as Tree;
  for (const key of keys) {
    const path = key.split('.');
    const value = path.reduce<unknown>((node, k) => (isTree(node) ? node[k] : undefined), from);
    if (value === undefined) {
      const holder = path.slice(0, -1).reduce<unknown>((node, k) => (isTree(node) ? node[k] : undefined), out);
      if (isTree(holder)) Reflect.deleteProperty(holder, path[path.length - 1]);
    } else setPath(out, path, structuredClone(value));
  }
  return out as unknown as Config;
}
