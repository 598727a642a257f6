// Loading the configuration: one YAML or JSON file, validated against the schema (zod),
// with PRESENCE_DNS_* environment variables and `--set key=value` flags layered on top.
// Relative paths are resolved against the config file's directory. Errors name the key.
// The daemon runs this in a thread that exits once it is done (index.ts `loadConfigApart`),
// so neither the schema library nor the YAML parser stays in its memory.
import { dirname, isAbsolute, resolve } from 'node:path';
import type { z } from 'zod';
import { ConfigError, setPath, type LoadedConfig, type LoadOptions } from './index.ts';
import { configSchema } from './schema.ts';
import { isFilePath } from '../util/config-types.ts';
import { parseStructured, readTextFile } from '../util/structured-file.ts';

type Tree = Record<string, unknown>;

const ENV_PREFIX = 'PRESENCE_DNS_';

interface Def {
  type: string;
  innerType?: z.ZodType;
  shape?: Record<string, z.ZodType>;
}

/** Follows zod wrappers (default, optional, ...) down to the definition they wrap. */
function unwrap(schema: z.ZodType): Def {
  let def = schema._zod.def as Def;
  while (def.innerType) def = def.innerType._zod.def;
  return def;
}

function objectShape(schema: z.ZodType): Record<string, z.ZodType> | null {
  const def = unwrap(schema);
  return def.type === 'object' && def.shape ? def.shape : null;
}

/** Whether `schema` or a schema it wraps was declared with `filePath`. */
function declaresFilePath(schema: z.ZodType): boolean {
  for (let node: z.ZodType | undefined = schema; node; node = (node._zod.def as Def).innerType) {
    if (isFilePath(node)) return true;
  }
  return false;
}

/** The keys the modules declared as file paths, which are resolved against the config file's directory when relative. */
function pathKeys(schema: z.ZodType, at: string[] = []): string[][] {
  const shape = objectShape(schema);
  if (!shape) return declaresFilePath(schema) ? [at] : [];
  return Object.entries(shape).flatMap(([key, value]) => pathKeys(value, [...at, key]));
}

const PATH_KEYS = pathKeys(configSchema);

/** The schema of the key at `path`, or null when the path names no key. */
function schemaAt(schema: z.ZodType, path: string[]): z.ZodType | null {
  let node = schema;
  for (const key of path) {
    const shape = objectShape(node);
    if (!shape || !(key in shape)) return null;
    node = shape[key];
  }
  return node;
}

/** `forward_cache_max_entries` → ["forward", "cache", "max_entries"], guided by the schema. */
function envPath(schema: z.ZodType, parts: string[]): string[] | null {
  const shape = objectShape(schema);
  if (!shape) return parts.length === 0 ? [] : null;
  for (let n = parts.length; n > 0; n--) {
    const key = parts.slice(0, n).join('_');
    if (!(key in shape)) continue;
    const rest = envPath(shape[key], parts.slice(n));
    if (rest) return [key, ...rest];
  }
  return null;
}

/**
 * Values from env and flags: JSON where it parses (numbers, booleans, lists), else the
 * string — except for string keys, which take the text as it is, so a token or cell id
 * of digits stays a string.
 */
function parseValue(text: string, path: string[]): unknown {
  const target = schemaAt(configSchema, path);
  if (target && ['string', 'enum'].includes(unwrap(target).type)) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function readFile(file: string): Tree {
  let text: string;
  try {
    text = readTextFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(code === 'EFBIG' ? `config file ${(err as Error).message}` : `cannot read config file ${file}: ${code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseStructured(file, text);
  } catch (err) {
    throw new ConfigError(`config file ${file} does not parse: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file ${file}: the top level must be a mapping of sections`);
  return doc as Tree;
}

export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const file = options.file ? resolve(options.file) : null;
  const tree = file ? readFile(file) : {};
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const path = envPath(configSchema, name.slice(ENV_PREFIX.length).toLowerCase().split('_'));
    if (!path) throw new ConfigError(`environment variable ${name} does not name a config key`);
    setPath(tree, path, parseValue(value, path));
  }
  for (const override of options.overrides ?? []) {
    const eq = override.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set ${override}: expected key.path=value`);
    const path = override.slice(0, eq).split('.');
    setPath(tree, path, parseValue(override.slice(eq + 1), path));
  }
  const parsed = configSchema.safeParse(tree);
  if (!parsed.success) {
    const problems = parsed.error.issues.flatMap((issue) => {
      const at = issue.path.join('.');
      // zod reports a typo at the parent; name the misspelt key itself.
      if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => `${at ? `${at}.` : ''}${k}: unknown key`);
      return [`${at || '(top level)'}: ${issue.message}`];
    });
    throw new ConfigError(`invalid configuration${file ? ` in ${file}` : ''}:\n  ${problems.join('\n  ')}`);
  }
  const config = parsed.data;
  const base = file ? dirname(file) : process.cwd();
  for (const path of PATH_KEYS) {
    const holder = path.slice(0, -1).reduce<Tree | undefined>((node, key) => node?.[key] as Tree | undefined, config);
    const key = path[path.length - 1];
    const value = holder?.[key];
    if (holder && typeof value === 'string' && !isAbsolute(value)) holder[key] = resolve(base, value);
  }
  return { config, file };
}
