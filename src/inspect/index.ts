// inspect: the read-only operator endpoints on the admin API — GET /v1/records (what DNS
// answers from), GET /v1/status (this node at a glance) and GET /v1/cells (the cells in
// the presence database with their heartbeat age) — that `presence-dns records|status|cells`
// print. Nothing here changes state.
import type { AdminServer } from '../admin/index.ts';
import type { TopologyView } from '../image/index.ts';
import { cellsEndpoint } from './cells.ts';
import { recordsEndpoint } from './records.ts';
import { statusBody, type StatusSources } from './status.ts';

export { DEFAULT_RECORDS_LIMIT, parseRecordsQuery, type RecordRow, type RecordsAnswer } from './records.ts';
export { CELLS_TIMEOUT_MS, type CellRow } from './cells.ts';
export { statusBody, type StatusSources } from './status.ts';

export const RECORDS_PATH = '/v1/records';
export const STATUS_PATH = '/v1/status';
export const CELLS_PATH = '/v1/cells';

export interface InspectSources extends StatusSources {
  topology: StatusSources['topology'] & { readonly current: TopologyView | null };
}

export function mountInspectApi(admin: AdminServer, sources: InspectSources): void {
  admin.route(RECORDS_PATH, (req) => recordsEndpoint(req, () => sources.topology.current));
  admin.route(STATUS_PATH, (req) => {
    if (req.method !== 'GET' || req.params.length) return { status: 404, body: { error: `use GET ${STATUS_PATH}` } };
    return { status: 200, body: statusBody(sources) };
  });
  admin.route(CELLS_PATH, (req) => cellsEndpoint(req, sources.presence?.store ?? null, sources.presence?.cellId ?? null));
}
