// Reading a topology file: our columnar format or an unmodified BOSH DNS records.json.
// A file that does not parse, or lacks the columnar shape, is rejected whole; a row
// with the wrong width or a bad value is skipped with a warning naming row and column.
import { parseIp } from './ip.ts';
import { HEALTH_VALUES, normalizeName, RECORD_KEYS, type AliasMap, type Health, type Instance, type Topology } from './types.ts';

export type ReadResult =
  | { ok: true; topology: Topology; warnings: string[] }
  | { ok: false; error: string };

const REQUIRED_COLUMNS = ['id', 'instance_group', 'network', 'deployment', 'ip', 'domain'] as const;
/** Our own column names that differ from BOSH's; both spellings are read. */
const COLUMN_SYNONYMS: Record<string, string> = { group: 'instance_group', index: 'instance_index' };

class RowError extends Error {}

type Row = (column: string) => unknown;

function label(row: Row, column: string, required: boolean): string | null {
  const value = row(column);
  if (value === undefined || value === null || value === '') {
    if (required) throw new RowError(`${column} is missing`);
    return null;
  }
  if (typeof value !== 'string') throw new RowError(`${column} must be a string`);
  const name = normalizeName(value);
  if (name.length === 0 || name.length > 63 || name.includes('.')) throw new RowError(`${column} "${value}" is not a DNS label`);
  return name;
}

function optionalInt(row: Row, column: string): number | null {
  const value = row(column);
  if (value === undefined || value === null || value === '') return null;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new RowError(`${column} must be a non-negative integer`);
  return n;
}

function intList(row: Row, column: string): number[] {
  const value = row(column);
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new RowError(`${column} must be a list`);
  return value.map((v, i) => {
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new RowError(`${column}[${i}] must be a non-negative integer`);
    return n;
  });
}

function ports(row: Row): Record<string, number> {
  const value = row('ports');
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new RowError('ports must be an object of name → port');
  const out: Record<string, number> = {};
  for (const [name, port] of Object.entries(value)) {
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) throw new RowError(`ports.${name} must be 1-65535`);
    out[name.toLowerCase()] = port as number;
  }
  return out;
}

function health(row: Row): Health | null {
  const value = row('health');
  if (value === undefined || value === null || value === '') return null;
  if (!HEALTH_VALUES.includes(value as Health)) throw new RowError(`health must be one of ${HEALTH_VALUES.join(', ')}`);
  return value as Health;
}

function toInstance(row: Row): Instance {
  const ipText = row('ip');
  const ip = typeof ipText === 'string' ? parseIp(ipText) : null;
  if (!ip) throw new RowError(`ip ${JSON.stringify(ipText)} is not an IP address`);
  const domainText = row('domain');
  if (typeof domainText !== 'string' || normalizeName(domainText) === '') throw new RowError('domain is missing');
  const agent = row('agent_id');
  const cell = row('cell_id');
  return {
    id: label(row, 'id', true)!,
    numId: optionalInt(row, 'num_id'),
    group: label(row, 'instance_group', true)!,
    groupIds: intList(row, 'group_ids'),
    network: label(row, 'network', true)!,
    networkId: optionalInt(row, 'network_id'),
    deployment: label(row, 'deployment', true)!,
    az: label(row, 'az', false),
    azId: optionalInt(row, 'az_id'),
    index: optionalInt(row, 'instance_index'),
    ip: ip.canonical,
    family: ip.family,
    domain: normalizeName(domainText),
    agentId: typeof agent === 'string' && agent !== '' ? agent.toLowerCase() : null,
    cellId: typeof cell === 'string' && cell !== '' ? cell : null,
    health: health(row),
    ports: ports(row),
  };
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
    if (typeof target === 'string' && target.trim() !== '') {
      targets.push(normalizeName(target));
    } else if (target && typeof target === 'object' && 'group_id' in target && 'root_domain' in target) {
      const t = target as { group_id: unknown; root_domain: unknown; placeholder_type?: unknown; health_filter?: unknown };
      const filter = BOSH_HEALTH_FILTER[String(t.health_filter ?? 'smart')] ?? 's0';
      const first = t.placeholder_type === 'uuid' ? '_' : `q-${filter}`;
      targets.push(`${first}.q-g${String(t.group_id)}.${normalizeName(String(t.root_domain))}`);
    } else {
      warnings.push(`alias ${alias}: target ${JSON.stringify(target)} is not a name; skipped`);
    }
  }
  return targets;
}

export function readAliases(value: unknown, warnings: string[], into: AliasMap = new Map()): AliasMap {
  if (value === undefined || value === null) return into;
  if (typeof value !== 'object' || Array.isArray(value)) {
    warnings.push('aliases must be an object of alias name → targets; ignored');
    return into;
  }
  for (const [alias, targets] of Object.entries(value)) {
    const name = normalizeName(alias);
    const list = aliasTargets(alias, targets, warnings);
    if (list.length) into.set(name, [...(into.get(name) ?? []), ...list]);
  }
  return into;
}

/** Reads `record_infos` rows of the columns `keys`: an Instance, or null with a warning naming row and column. */
type RowReader = (info: unknown, where: string, warnings: string[]) => Instance | null;

function rowReader(keys: string[]): RowReader | string {
  const columns = new Map<string, number>();
  keys.forEach((k, i) => columns.set(COLUMN_SYNONYMS[k] ?? k, i));
  const missing = REQUIRED_COLUMNS.filter((c) => !columns.has(c));
  if (missing.length) return `record_keys lacks required column(s): ${missing.join(', ')}`;
  return (info, where, warnings) => {
    if (!Array.isArray(info) || info.length !== keys.length) {
      warnings.push(`${where}: expected ${keys.length} columns, got ${Array.isArray(info) ? info.length : typeof info}; skipped`);
      return null;
    }
    try {
      return toInstance((column) => {
        const at = columns.get(column);
        return at === undefined ? undefined : info[at];
      });
    } catch (err) {
      if (!(err instanceof RowError)) throw err;
      warnings.push(`${where}: ${err.message}; skipped`);
      return null;
    }
  };
}

export function parseTopology(text: string): ReadResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `not valid JSON: ${(err as Error).message}` };
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return { ok: false, error: 'top level must be a JSON object' };
  const file = doc as Record<string, unknown>;
  const keys = file.record_keys;
  const infos = file.record_infos;
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) return { ok: false, error: 'record_keys must be a list of column names' };
  if (!Array.isArray(infos)) return { ok: false, error: 'record_infos must be a list of rows' };
  const read = rowReader(keys);
  if (typeof read === 'string') return { ok: false, error: read };

  const warnings: string[] = [];
  const instances: Instance[] = [];
  infos.forEach((info, i) => {
    const instance = read(info, `record_infos[${i}]`, warnings);
    if (instance) instances.push(instance);
  });

  let ptrRecords: Array<[string, string]> | null = null;
  if (Array.isArray(file.records)) {
    ptrRecords = [];
    for (const pair of file.records) {
      const ip = Array.isArray(pair) && typeof pair[0] === 'string' ? parseIp(pair[0]) : null;
      if (!ip || typeof pair[1] !== 'string') {
        warnings.push(`records: ${JSON.stringify(pair)} is not an [ip, name] pair; skipped`);
        continue;
      }
      ptrRecords.push([ip.canonical, normalizeName(pair[1])]);
    }
  }
  const version = typeof file.version === 'number' && Number.isFinite(file.version) ? file.version : 0;
  return {
    ok: true,
    warnings,
    topology: {
      version,
      instances,
      aliases: readAliases(file.aliases, warnings),
      ptrRecords,
      generatedAt: typeof file.generated_at === 'string' ? file.generated_at : null,
      source: typeof file.source === 'string' ? file.source : null,
      cluster: typeof file.cluster === 'string' ? file.cluster : null,
    },
  };
}

export interface JournalRead {
  /** The snapshot version the journal continues; null when its header is unreadable. */
  base: number | null;
  cluster: string | null;
  entries: Array<{ version: number; removes: string[]; adds: Instance[] }>;
  /** Bytes up to the end of the last complete line read (where to resume tailing). */
  consumed: number;
  warnings: string[];
}

/**
 * Reads a journal (writer.ts): a header line, then one line per change. Reading stops at
 * the first line that is incomplete or does not parse (a torn append); `consumed` says
 * how far it got, so a tail resumes there. `fromHeader` false: `text` continues a
 * journal already read (no header line).
 */
export function parseJournal(text: string, fromHeader = true): JournalRead {
  const out: JournalRead = { base: null, cluster: null, entries: [], consumed: 0, warnings: [] };
  const read = rowReader([...RECORD_KEYS]);
  if (typeof read === 'string') throw new Error(read);
  let offset = 0;
  let headerPending = fromHeader;
  for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', offset)) {
    const line = text.slice(offset, end);
    let doc: unknown;
    try {
      doc = JSON.parse(line);
    } catch {
      out.warnings.push(`journal line at byte ${offset} does not parse; stopped there`);
      break;
    }
    const entry = doc as Record<string, unknown>;
    if (headerPending) {
      headerPending = false;
      if (entry.journal !== 1 || typeof entry.base !== 'number') {
        out.warnings.push('journal header is not {"journal":1,"base":N}; ignored the journal');
        break;
      }
      out.base = entry.base;
      out.cluster = typeof entry.cluster === 'string' ? entry.cluster : null;
    } else {
      if (typeof entry.v !== 'number' || !Array.isArray(entry.rm) || !Array.isArray(entry.add) || !entry.rm.every((n) => typeof n === 'string')) {
        out.warnings.push(`journal line at byte ${offset} is not a change; stopped there`);
        break;
      }
      const adds: Instance[] = [];
      entry.add.forEach((row, i) => {
        const instance = read(row, `journal v${entry.v as number} add[${i}]`, out.warnings);
        if (instance) adds.push(instance);
      });
      out.entries.push({ version: entry.v, removes: (entry.rm as string[]).map(normalizeName), adds });
    }
    offset = end + 1;
    out.consumed = Buffer.byteLength(text.slice(0, offset));
  }
  return out;
}
