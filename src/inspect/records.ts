// GET /v1/records: the instances DNS answers from right now — the main thread's view of
// the topology image (the one the DNS thread reads), not the file or the database. A big
// topology is walked in slices with a yield to the event loop between them, so listing
// 600k records never holds up the queries this thread answers. A new image put in service
// mid-walk restarts it (the old image's buffer may be recycled once no thread reads it);
// deltas applied mid-walk are reported as `changedDuring`. The JSON is written in slices too.
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { AdminRequest, AdminResponse } from '../admin/index.ts';
import { HEALTH_VALUES, instanceName, type Instance, type TopologyView } from '../image/index.ts';

/** Instances examined per slice of the walk (about a millisecond of work). */
const SLICE = 2000;
/** Records returned unless `limit` says otherwise. */
export const DEFAULT_RECORDS_LIMIT = 10_000;
const MAX_RESTARTS = 5;

const FILTERS = ['group', 'network', 'deployment', 'domain', 'cell', 'health'] as const;
type Filter = (typeof FILTERS)[number];

export class QueryError extends Error {
  constructor(readonly parameter: string, reason: string) {
    super(`${parameter}: ${reason}`);
  }
}

export interface RecordsQuery {
  filters: Partial<Record<Filter, string>>;
  limit: number;
}

/** Reads and checks the query string; an unknown parameter or a bad value is an error naming it. */
export function parseRecordsQuery(query: URLSearchParams): RecordsQuery {
  const filters: RecordsQuery['filters'] = {};
  let limit = DEFAULT_RECORDS_LIMIT;
  for (const [key, value] of query) {
    if (key === 'limit') {
      if (!/^\d+$/.test(value) || Number(value) < 1) throw new QueryError('limit', `must be a positive integer, got "${value}"`);
      limit = Number(value);
    } else if ((FILTERS as readonly string[]).includes(key)) {
      if (key === 'health' && !(HEALTH_VALUES as readonly string[]).includes(value)) {
        throw new QueryError('health', `must be one of ${HEALTH_VALUES.join(', ')}, got "${value}"`);
      }
      filters[key as Filter] = key === 'cell' ? value : value.toLowerCase();
    } else {
      throw new QueryError(key, `unknown parameter; use ${[...FILTERS, 'limit'].join(', ')}`);
    }
  }
  return { filters, limit };
}

function matches(i: Instance, f: RecordsQuery['filters']): boolean {
  return (f.group === undefined || i.group === f.group)
    && (f.network === undefined || i.network === f.network)
    && (f.deployment === undefined || i.deployment === f.deployment)
    && (f.domain === undefined || i.domain === f.domain)
    && (f.cell === undefined || i.cellId === f.cell)
    && (f.health === undefined || i.health === f.health);
}

/** One record as listed: the instance's fields DNS answers with, its full name and its cell. */
export type RecordRow = Pick<Instance, 'id' | 'group' | 'network' | 'deployment' | 'domain' | 'az' | 'index' | 'ip' | 'health' | 'ports'>
  & { name: string; cell: string | null };

function row(i: Instance): RecordRow {
  return {
    name: instanceName(i), id: i.id, group: i.group, network: i.network, deployment: i.deployment, domain: i.domain,
    az: i.az, index: i.index, ip: i.ip, health: i.health, cell: i.cellId, ports: i.ports,
  };
}

/** The JSON answer of GET /v1/records (records as objects). */
export interface RecordsAnswer extends Omit<RecordsListing, 'records'> {
  records: RecordRow[];
}

interface RecordsListing {
  /** Topology version (revision) when the walk started. */
  version: number;
  /** Records in service, all of them. */
  total: number;
  /** Records matching the filters. */
  matched: number;
  truncated: boolean;
  /** Deltas were applied while walking: the list may mix two versions of a few records. */
  changedDuring: boolean;
  /** Each record's JSON text. */
  records: string[];
}

/** Walks the view in service in slices; null when no topology is loaded yet. */
async function listRecords(current: () => TopologyView | null, query: RecordsQuery): Promise<RecordsListing | null> {
  for (let attempt = 0; ; attempt++) {
    const view = current();
    if (!view) return null;
    const version = view.version;
    // Kept as JSON text, not objects: 600k small strings cost the collector far less than 600k row objects.
    const records: string[] = [];
    let matched = 0;
    const walk = view.instances();
    let replaced = false;
    for (let done = false; !done;) {
      for (let n = 0; n < SLICE; n++) {
        const next = walk.next();
        if (next.done) {
          done = true;
          break;
        }
        if (!matches(next.value, query.filters)) continue;
        matched++;
        if (records.length < query.limit) records.push(JSON.stringify(row(next.value)));
      }
      if (done) break;
      await yieldToLoop();
      if (current() !== view) {
        replaced = true;
        break;
      }
    }
    if (replaced && attempt < MAX_RESTARTS) continue;
    if (replaced) throw new Error(`the topology image was replaced ${MAX_RESTARTS + 1} times while listing it; try again`);
    return { version, total: view.recordCount, matched, truncated: matched > records.length, changedDuring: view.version !== version, records };
  }
}

export async function recordsEndpoint(req: AdminRequest, current: () => TopologyView | null): Promise<AdminResponse> {
  if (req.method !== 'GET') return { status: 405, body: { error: `${req.method} ${req.path}: use GET` } };
  if (req.params.length) return { status: 404, body: { error: `no such endpoint: ${req.path}` } };
  let query: RecordsQuery;
  try {
    query = parseRecordsQuery(req.query);
  } catch (err) {
    if (!(err instanceof QueryError)) throw err;
    return { status: 400, body: { error: err.message, field: err.parameter } };
  }
  const answer = await listRecords(current, query);
  if (!answer) return { status: 503, body: { error: 'no topology is loaded yet' } };
  return { status: 200, body: null, stream: serialise(answer) };
}

/** The listing as JSON text, a slice of records at a time with a yield between slices. */
async function* serialise(listing: RecordsListing): AsyncGenerator<string> {
  const { records, ...counts } = listing;
  yield `${JSON.stringify(counts).slice(0, -1)},"records":[`;
  for (let start = 0; start < records.length; start += SLICE) {
    if (start > 0) await yieldToLoop();
    yield `${start > 0 ? ',\n' : '\n'}${records.slice(start, start + SLICE).join(',\n')}`;
  }
  yield ']}\n';
}
