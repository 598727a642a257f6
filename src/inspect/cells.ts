// GET /v1/cells: every cell in the presence database with the age of its last heartbeat,
// like `consul members`. It asks the database (through the presence store), so it says
// so plainly — 503 with the reason — when there is none or it does not answer in time.
import type { AdminRequest, AdminResponse } from '../admin/index.ts';
import type { CellMember, PresenceStore } from '../presence/index.ts';

/** Longest the listing waits for the database before answering 503. */
export const CELLS_TIMEOUT_MS = 3000;

export type CellState = 'alive' | 'silent';

export interface CellRow extends CellMember {
  /** silent: no heartbeat for longer than its TTL (the reaper expires it after a full TTL of its own watching). */
  state: CellState;
  self: boolean;
}

export async function cellsEndpoint(req: AdminRequest, store: PresenceStore | null, self: string | null): Promise<AdminResponse> {
  if (req.method !== 'GET') return { status: 405, body: { error: `${req.method} ${req.path}: use GET` } };
  if (req.params.length) return { status: 404, body: { error: `no such endpoint: ${req.path}` } };
  if (!store) return { status: 503, body: { error: 'this node has no presence database (database.url unset and database.embedded false), so it knows no cells', code: 'NO_DATABASE' } };
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), CELLS_TIMEOUT_MS)));
  try {
    const members = await Promise.race([store.cellMembers(), late]);
    if (members === 'late') return { status: 503, body: { error: `the presence database did not answer within ${CELLS_TIMEOUT_MS} ms`, code: 'DB_TIMEOUT' } };
    const cells: CellRow[] = members.map((m) => ({ ...m, state: m.heartbeatAgeSeconds > m.ttlSeconds ? 'silent' : 'alive', self: m.cellId === self }));
    return { status: 200, body: { cells } };
  } catch (err) {
    return { status: 503, body: { error: `the presence database is unreachable: ${(err as Error).message}`, code: 'DB_DOWN' } };
  } finally {
    clearTimeout(timer);
  }
}
