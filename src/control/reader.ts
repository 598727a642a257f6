// Reading a topology file: our columnar format or an unmodified BOSH DNS records.json.
// A file that does not parse, or lacks the columnar shape, is rejected whole; a row
// with the wrong width or a bad value is skipped with a warning naming row and column.
// Every name that can reach the wire (instance names and their parts, domains, aliases,
// BOSH's `records` names) is checked here against what the encoder can write
// (util/dns-name.ts), so no query can ever meet a name it cannot answer with.
import { labelProblem, MAX_NAME_LENGTH, nameProblem, zoneProblem } from '../util/dns-name.ts';
import { parseIp } from '../util/ip.ts';
import { JsonScanError, scanArray, scanObject, type Range } from './json-scan.ts';
import { instanceByKind, STORED_FIELDS, type KindValues, type ReadByKind, type StoredKey } from '../image/fields.ts';
import { HEALTH_VALUES, normalizeName, type AliasMap, type Health, type Instance, type Topology } from '../image/instance.ts';

export type ReadResult =
  | { ok: true; topology: Topology; warnings: string[] }
  | { ok: false; error: string };

/** The kinds of value every instance has: a file must have their columns. */
const REQUIRED_KINDS: ReadonlySet<keyof KindValues> = new Set(['label', 'ip', 'domain']);
const REQUIRED_COLUMNS = STORED_FIELDS.filter((f) => REQUIRED_KINDS.has(f.kind)).map((f) => f.column);
/** Our own column names that differ from BOSH's; both spellings are read. */
const COLUMN_SYNONYMS: Record<string, string> = Object.fromEntries(STORED_FIELDS.flatMap((f) => (f.columnAlias ? [[f.columnAlias, f.column]] : [])));

class RowError extends Error {}

/** Where each field's column stands in a row (-1: absent). */
type Plan = Record<StoredKey, number>;

const at = (info: unknown[], position: number): unknown => (position < 0 ? undefined : info[position]);

/**
 * Checked labels of the columns whose values recur (groups, networks, deployments, zones,
 * domains): value → the label, or why it is not one. Rows then cost a map lookup, not a
 * check; ids, which never recur, are checked every time.
 */
type LabelCache = Map<string, string | RowError>;

function optionalLabel(value: unknown, column: string, cache?: LabelCache): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string') throw new RowError(`${column} must be a string`);
  let checked = cache?.get(value);
  if (checked === undefined) {
    const name = normalizeName(value);
    const problem = labelProblem(name);
    checked = problem ? new RowError(`${column} ${JSON.stringify(value)} is not a DNS label: it ${problem}`) : name;
    cache?.set(value, checked);
  }
  if (checked instanceof RowError) throw checked;
  return checked;
}

function label(value: unknown, column: string, cache?: LabelCache): string {
  const name = optionalLabel(value, column, cache);
  if (name === null) throw new RowError(`${column} is missing`);
  return name;
}

/**
 * A name that reaches the wire, whole, made of labels already checked one by one: only
 * its length can still be wrong. `what` says which columns made it.
 */
function checkLength(labels: string[], what: string): void {
  let length = labels.length - 1;
  for (const l of labels) length += l.length;
  if (length > MAX_NAME_LENGTH) throw new RowError(`${what} make the name ${JSON.stringify(labels.join('.'))}, which is longer than ${MAX_NAME_LENGTH} bytes (${length})`);
}

function optionalInt(value: unknown, column: string): number | null {
  if (value === undefined || value === null || value === '') return null;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new RowError(`${column} must be a non-negative integer`);
  return n;
}

function intList(value: unknown, column: string): number[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new RowError(`${column} must be a list`);
  return (value as unknown[]).map((v, i) => {
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new RowError(`${column}[${i}] must be a non-negative integer`);
    return n;
  });
}

function ports(value: unknown): Record<string, number> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new RowError('ports must be an object of name → port');
  const out: Array<[string, number]> = [];
  for (const [name, port] of Object.entries(value)) {
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) throw new RowError(`ports.${name} must be 1-65535`);
    out.push([name.toLowerCase(), port as number]);
  }
  // fromEntries defines own properties: a port named "__proto__" stays a port.
  return Object.fromEntries(out);
}

function health(value: unknown): Health | null {
  if (value === undefined || value === null || value === '') return null;
  if (!HEALTH_VALUES.includes(value as Health)) throw new RowError(`health must be one of ${HEALTH_VALUES.join(', ')}`);
  return value as Health;
}

function domainOf(text: unknown, column: string, cache: LabelCache): string {
  if (typeof text !== 'string' || normalizeName(text) === '') throw new RowError(`${column} is missing`);
  let checked = cache.get(text);
  if (checked === undefined) {
    const domain = normalizeName(text);
    const problem = zoneProblem(domain);
    checked = problem ? new RowError(`${column} ${JSON.stringify(text)} is not a DNS name: it ${problem}`) : domain;
    cache.set(text, checked);
  }
  if (checked instanceof RowError) throw checked;
  return checked;
}

function ipOf(value: unknown, column: string): string {
  const ip = typeof value === 'string' ? parseIp(value) : null;
  if (!ip) throw new RowError(`${column} ${JSON.stringify(value)} is not an IP address`);
  return ip.canonical;
}

/** Reads each kind of value from its cell of a row. */
function cellReaders(plan: Plan, cache: LabelCache): ReadByKind<unknown[]> {
  const cell = (info: unknown[], key: StoredKey) => at(info, plan[key]);
  return {
    label: (f, info) => label(cell(info, f.key), f.column, f.recurs ? cache : undefined),
    optionalLabel: (f, info) => optionalLabel(cell(info, f.key), f.column, f.recurs ? cache : undefined),
    domain: (f, info) => domainOf(cell(info, f.key), f.column, cache),
    numericId: (f, info) => optionalInt(cell(info, f.key), f.column),
    int: (f, info) => optionalInt(cell(info, f.key), f.column),
    idList: (f, info) => intList(cell(info, f.key), f.column),
    ip: (f, info) => ipOf(cell(info, f.key), f.column),
    text: (f, info) => {
      const text = cell(info, f.key);
      if (typeof text !== 'string' || text === '') return null;
      return f.lowerCase ? text.toLowerCase() : text;
    },
    health: (f, info) => health(cell(info, f.key)),
    ports: (f, info) => ports(cell(info, f.key)),
  };
}

function toInstance(info: unknown[], readers: ReadByKind<unknown[]>): Instance {
  const instance = instanceByKind(readers, info);
  // SRV targets and PTR answers name the instance by id and by index.
  const rest = [instance.group, instance.network, instance.deployment, instance.domain];
  checkLength([instance.id, ...rest], 'id, instance_group, network, deployment and domain');
  if (instance.index !== null) checkLength([String(instance.index), ...rest], 'instance_index, instance_group, network, deployment and domain');
  return instance;
}

const BOSH_HEALTH_FILTER: Record<string, string> = { smart: 's0', unhealthy: 's1', healthy: 's3', all: 's4' };

/** Alias targets: strings, or BOSH's {group_id, root_domain, placeholder_type, health_filter} objects. */
function aliasTargets(alias: string, value: unknown, warnings: string[]): string[] {
  if (!Array.isArray(value)) {
    warnings.push(`alias ${alias}: targets must be a list; skipped`);
    return [];
  }
  const targets: string[] = [];
  for (const target of value) {
    let name: string;
    if (typeof target === 'string' && target.trim() !== '') {
      name = normalizeName(target);
    } else if (target && typeof target === 'object' && 'group_id' in target && 'root_domain' in target) {
      const t = target as { group_id: unknown; root_domain: unknown; placeholder_type?: unknown; health_filter?: unknown };
      const filterName = t.health_filter ?? 'smart';
      const filter = (typeof filterName === 'string' && BOSH_HEALTH_FILTER[filterName]) || 's0';
      const first = t.placeholder_type === 'uuid' ? '_' : `q-${filter}`;
      name = `${first}.q-g${String(t.group_id)}.${normalizeName(String(t.root_domain))}`;
    } else {
      warnings.push(`alias ${alias}: target ${JSON.stringify(target)} is not a name; skipped`);
      continue;
    }
    const problem = nameProblem(name);
    if (problem) warnings.push(`alias ${alias}: target ${JSON.stringify(name)} is not a DNS name: it ${problem}; skipped`);
    else targets.push(name);
  }
  return targets;
}

/**
 * Why an alias name cannot be served, or null. Its answers are owned by the name asked
 * (which the client wrote) and their SOA by the alias's parent zone.
 */
function aliasNameProblem(name: string): string | null {
  const own = nameProblem(name);
  if (own) return own;
  const dot = name.indexOf('.');
  return dot === -1 ? null : zoneProblem(name.slice(dot + 1));
}

export function readAliases(value: unknown, warnings: string[], into: AliasMap = new Map()): AliasMap {
  if (value === undefined || value === null) return into;
  if (typeof value !== 'object' || Array.isArray(value)) {
    warnings.push('aliases must be an object of alias name → targets; ignored');
    return into;
  }
  for (const [alias, targets] of Object.entries(value)) {
    const name = normalizeName(alias);
    const problem = aliasNameProblem(name);
    if (problem) {
      warnings.push(`alias ${JSON.stringify(alias)} is not a DNS name: it ${problem}; skipped`);
      continue;
    }
    const list = aliasTargets(alias, targets, warnings);
    if (list.length) into.set(name, [...(into.get(name) ?? []), ...list]);
  }
  return into;
}

/** Reads `record_infos` rows of the columns `keys`: an Instance, or null with a warning naming row and column. */
export type RowReader = (info: unknown, where: () => string, warnings: string[]) => Instance | null;

export function rowReader(keys: string[]): RowReader | string {
  const columns = new Map<string, number>();
  keys.forEach((k, i) => columns.set(COLUMN_SYNONYMS[k] ?? k, i));
  const missing = REQUIRED_COLUMNS.filter((c) => !columns.has(c));
  if (missing.length) return `record_keys lacks required column(s): ${missing.join(', ')}`;
  const cache: LabelCache = new Map();
  const plan = Object.fromEntries(STORED_FIELDS.map((f) => [f.key, columns.get(f.column) ?? -1])) as Plan;
  const readers = cellReaders(plan, cache);
  return (info, where, warnings) => {
    if (!Array.isArray(info) || info.length !== keys.length) {
      warnings.push(`${where()}: expected ${keys.length} columns, got ${Array.isArray(info) ? info.length : typeof info}; skipped`);
      return null;
    }
    try {
      return toInstance(info, readers);
    } catch (err) {
      if (!(err instanceof RowError)) throw err;
      warnings.push(`${where()}: ${err.message}; skipped`);
      return null;
    }
  };
}

export type StreamResult =
  | { ok: true; topology: Omit<Topology, 'instances'>; warnings: string[] }
  | { ok: false; error: string };

/**
 * Reads a topology file's bytes, handing each good row to `onInstance` as it is read: the
 * rows are parsed one at a time and never held together. On `ok: false` the rows already
 * handed over must be discarded (the file is rejected whole).
 */
export function readTopology(bytes: Buffer, onInstance: (instance: Instance) => void): StreamResult {
  const text = (r: Range) => bytes.toString('utf8', r.start, r.end);
  const members = new Map<string, Range>();
  try {
    scanObject(bytes, (key, range) => members.set(key, range), text);
  } catch (err) {
    if (!(err instanceof JsonScanError) && !(err instanceof SyntaxError)) throw err;
    return { ok: false, error: notAnObject(bytes) ?? `not valid JSON: ${err.message}` };
  }
  try {
    // Every member is parsed, even those not read (a file is valid JSON or rejected whole);
    // record_infos is parsed row by row below.
    const parsed = new Map<string, unknown>();
    for (const [key, range] of members) if (key !== 'record_infos') parsed.set(key, JSON.parse(text(range)));
    const value = (key: string): unknown => parsed.get(key);
    const keys = value('record_keys');
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) return { ok: false, error: 'record_keys must be a list of column names' };
    const infos = members.get('record_infos');
    if (!infos || bytes[infos.start] !== 0x5b) return { ok: false, error: 'record_infos must be a list of rows' };
    const read = rowReader(keys);
    if (typeof read === 'string') return { ok: false, error: read };
    const warnings: string[] = [];
    scanArray(bytes, infos, (i, range) => {
      const instance = read(JSON.parse(text(range)), () => `record_infos[${i}]`, warnings);
      if (instance) onInstance(instance);
    });
    const records = value('records');
    let ptrRecords: Array<[string, string]> | null = null;
    if (Array.isArray(records)) {
      ptrRecords = [];
      for (const [i, pair] of (records as unknown[]).entries()) {
        const [address, target] = Array.isArray(pair) ? (pair as unknown[]) : [];
        const ip = typeof address === 'string' ? parseIp(address) : null;
        if (!ip || typeof target !== 'string') {
          warnings.push(`records[${i}]: ${JSON.stringify(pair)} is not an [ip, name] pair; skipped`);
          continue;
        }
        // PTR answers carry these names as they are.
        const name = normalizeName(target);
        const problem = nameProblem(name);
        if (problem) warnings.push(`records[${i}]: name ${JSON.stringify(target)} is not a DNS name: it ${problem}; skipped`);
        else ptrRecords.push([ip.canonical, name]);
      }
    }
    const version = value('version');
    // A revision: the image keeps it as an integer, so a fraction would be served as another version.
    if (version !== undefined && !(typeof version === 'number' && Number.isSafeInteger(version) && version >= 0)) {
      return { ok: false, error: `version must be a non-negative integer, got ${JSON.stringify(version)}` };
    }
    const str = (key: string) => {
      const v = value(key);
      return typeof v === 'string' ? v : null;
    };
    return {
      ok: true,
      warnings,
      topology: {
        version: version ?? 0,
        aliases: readAliases(value('aliases'), warnings),
        ptrRecords,
        generatedAt: str('generated_at'),
        source: str('source'),
        cluster: str('cluster'),
      },
    };
  } catch (err) {
    if (!(err instanceof SyntaxError) && !(err instanceof JsonScanError)) throw err;
    return { ok: false, error: `not valid JSON: ${err.message}` };
  }
}

/** Why a document that is not one object is refused: its own parse error, or its shape. */
function notAnObject(bytes: Buffer): string | null {
  let k = 0;
  while (k < bytes.length && (bytes[k] === 0x20 || bytes[k] === 0x0a || bytes[k] === 0x0d || bytes[k] === 0x09)) k++;
  if (bytes[k] === 0x7b) return null;
  try {
    JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return `not valid JSON: ${(err as Error).message}`;
  }
  return 'top level must be a JSON object';
}

/** The whole topology of a (small) file's text, rows collected. */
export function parseTopology(text: string): ReadResult {
  const instances: Instance[] = [];
  const read = readTopology(Buffer.from(text), (i) => instances.push(i));
  return read.ok ? { ok: true, warnings: read.warnings, topology: { ...read.topology, instances } } : read;
}
