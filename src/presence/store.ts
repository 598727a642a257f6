// The presence tables in SQL: cells and heartbeats, instance rows written only when they
// change, revisions from one counter row updated inside each writing transaction (which
// serialises writers, so a reader polling `revision > last` never skips a committed
// change), numeric-id allocation, locket-style TTL locks and compare-and-set expiry.
import type { RouteRegistration, Registration } from '../registrations/types.ts';
import { STORED_FIELDS, type StoredInstance } from '../image/fields.ts';
import type { Db, Queryable, Row, SqlValue } from './db.ts';
import type { CellObservation, LockHolder } from './decisions.ts';

export const NOTIFY_CHANNEL = 'presence_dns_revision';
/** The lock the reaper holds (one node at a time); the cell listing shows its holder. */
export const REAPER_LOCK = 'reaper';
const SNAPSHOT_PAGE = 10_000;

/**
 * One instance row: a registration as the database keeps it — owned by a cell, with its
 * numeric ids resolved. The route emitter's extras and the health checks (their results are `health`) stay local and are not stored.
 */
export interface PresenceRecord extends Omit<Registration, 'groupIds' | 'app' | 'isolationSegment' | 'tags' | 'checks'> {
  cellId: string;
  groupIds: number[];
}

export interface PresenceRow extends PresenceRecord {
  revision: number;
  deleted: boolean;
}

export interface CellRegistration {
  cellId: string;
  owner: string;
  address: string | null;
  ttlMs: number;
}

/** A cell as `GET /v1/cells` shows it. */
export interface CellMember {
  cellId: string;
  address: string | null;
  ttlSeconds: number;
  heartbeats: number;
  /** Seconds since its last heartbeat, by the database server's clock (one clock for every cell). */
  heartbeatAgeSeconds: number;
  instances: number;
  /** Its process holds the reaper lock. */
  reaperHolder: boolean;
}

export interface WriteResult {
  written: number;
  tombstoned: number;
  revision: number;
}

/** The instance's columns (src/image/fields.ts), then the row's own. */
const FIELD_COLUMNS = STORED_FIELDS.map((f) => f.db.column);
const ROW_COLUMNS = [...FIELD_COLUMNS, 'routes', 'revision', 'deleted'].join(', ');

/** A presences row as the driver gives it: the instance's columns as their fields hold them, and the row's own. */
interface DbPresenceRow extends Row {
  id: string;
  cell_id: string;
  routes: RouteRegistration[];
  revision: number | string;
  deleted: boolean;
}

function fromDb(row: DbPresenceRow): PresenceRow {
  const record: Record<string, unknown> = {};
  for (const f of STORED_FIELDS) record[f.key] = row[f.db.column];
  return { ...(record as unknown as PresenceRecord), routes: row.routes, revision: Number(row.revision), deleted: row.deleted };
}

/** The advisory lock space of the snapshot slots ("pdss"). */
const SNAPSHOT_SLOT_LOCK = 0x70647373;

/** Takes any one of `count` snapshot slots for this transaction; false when all are taken. */
async function takeSnapshotSlot(tx: Queryable, count: number): Promise<boolean> {
  const first = Math.floor(Math.random() * count);
  for (let i = 0; i < count; i++) {
    const { rows } = await tx.query<{ taken: boolean }>('SELECT pg_try_advisory_xact_lock($1, $2) AS taken', [SNAPSHOT_SLOT_LOCK, (first + i) % count]);
    if (rows[0].taken) return true;
  }
  return false;
}

/** A canonical text of what DNS and routes see of a record, to tell a real change. */
export function recordKey(r: PresenceRecord): string {
  const fields: StoredInstance = r;
  return JSON.stringify([
    ...STORED_FIELDS.map((f) => (f.kind === 'ports' ? Object.keys(r.ports).sort().map((k) => [k, r.ports[k]]) : fields[f.key])),
    r.routes,
  ]);
}

type IdKind = 'group' | 'az' | 'network' | 'instance';
type IdName = [IdKind, string, string];

const idKey = (kind: IdKind, scope: string, name: string) => `${kind}\u0000${scope}\u0000${name}`;

/**
 * Numeric ids of names, allocated on first use. Ids are never changed once given, so the
 * names already numbered are read without any lock (`loadKnown`); names still unknown, and
 * pins not yet recorded, are allocated by `allocate` inside a transaction holding the
 * revision row lock (which serialises allocators). Set based: a cell of any size costs a
 * few statements.
 */
class IdAllocator {
  private readonly known = new Map<string, number>();
  private readonly unique: IdName[];

  constructor(private readonly pins: Array<[...IdName, number]>, names: IdName[]) {
    this.unique = [...new Map([...names, ...pins.map((p): IdName => [p[0], p[1], p[2]])].map((n) => [idKey(...n), n])).values()];
  }

  /** Reads the ids already given; true when every name (and pin) has one. */
  async loadKnown(db: Queryable): Promise<boolean> {
    await this.load(db, this.unique);
    return this.unique.every((n) => this.known.has(idKey(...n)));
  }

  /** Records the new pins, then numbers every name still unknown in first-use order; `tx` holds the revision row lock. */
  async allocate(tx: Queryable): Promise<void> {
    // Pins first, so no allocation below hands a pinned number to another name.
    const newPins = this.pins.filter((p) => !this.known.has(idKey(p[0], p[1], p[2])));
    if (newPins.length) {
      await tx.query(
        `INSERT INTO numeric_ids (kind, scope, name, id)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) ON CONFLICT DO NOTHING`,
        [newPins.map((p) => p[0]), newPins.map((p) => p[1]), newPins.map((p) => p[2]), newPins.map((p) => p[3])],
      );
    }
    // Another writer may have numbered some of them meanwhile.
    await this.load(tx, this.unique.filter((n) => !this.known.has(idKey(...n))));
    const missing = this.unique.filter((n) => !this.known.has(idKey(...n)));
    if (missing.length === 0) return;
    const { rows } = await tx.query<{ kind: IdKind; scope: string; name: string; id: number }>(
      `WITH wanted AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS w(kind, scope, name, ord)),
         tops AS (SELECT kind, scope, (SELECT COALESCE(MAX(n.id), 0) FROM numeric_ids n WHERE n.kind = s.kind AND n.scope = s.scope) AS top
                    FROM (SELECT DISTINCT kind, scope FROM wanted) s)
       INSERT INTO numeric_ids (kind, scope, name, id)
         SELECT w.kind, w.scope, w.name, t.top + row_number() OVER (PARTITION BY w.kind, w.scope ORDER BY w.ord)
           FROM wanted w JOIN tops t USING (kind, scope)
       RETURNING kind, scope, name, id`,
      [missing.map((n) => n[0]), missing.map((n) => n[1]), missing.map((n) => n[2])],
    );
    for (const r of rows) this.known.set(idKey(r.kind, r.scope, r.name), r.id);
  }

  private async load(db: Queryable, wanted: IdName[]): Promise<void> {
    const byScope = new Map<string, { kind: IdKind; scope: string; names: string[] }>();
    for (const [kind, scope, name] of wanted) {
      const key = idKey(kind, scope, '');
      const group = byScope.get(key) ?? { kind, scope, names: [] };
      group.names.push(name);
      byScope.set(key, group);
    }
    // One query per (kind, scope), probing the primary key with `name = ANY`: a join against
    // an unnest was planned as a hash of the whole table while a registration burst outran
    // autovacuum's statistics, which made every cell's write cost O(fleet).
    for (const { kind, scope, names } of byScope.values()) {
      const { rows } = await db.query<{ name: string; id: number }>(
        'SELECT name, id FROM numeric_ids WHERE kind = $1 AND scope = $2 AND name = ANY($3::text[])',
        [kind, scope, names],
      );
      for (const r of rows) this.known.set(idKey(kind, scope, r.name), r.id);
    }
  }

  id(kind: IdKind, scope: string, name: string): number {
    const id = this.known.get(idKey(kind, scope, name));
    if (id === undefined) throw new Error(`numeric id of ${kind} ${name} was not prepared`);
    return id;
  }
}

/** The pins a registration carries and the names it needs numbered. */
function idNeeds(r: Registration): { pins: Array<[...IdName, number]>; names: IdName[] } {
  const pins: Array<[...IdName, number]> = [];
  const names: IdName[] = [];
  if (r.groupIds === null) names.push(['group', '', r.group]);
  if (r.networkId !== null) pins.push(['network', '', r.network, r.networkId]);
  else names.push(['network', '', r.network]);
  if (r.az !== null && r.azId !== null) pins.push(['az', '', r.az, r.azId]);
  else if (r.az !== null) names.push(['az', '', r.az]);
  if (r.numId !== null) pins.push(['instance', r.deployment, r.id, r.numId]);
  else names.push(['instance', r.deployment, r.id]);
  return { pins, names };
}

/** The record of `r` (its route-emitter extras and checks are carried along but never stored). */
function toRecord(cellId: string, r: Registration, ids: IdAllocator): PresenceRecord {
  return {
    ...r,
    cellId,
    groupIds: r.groupIds ?? [ids.id('group', '', r.group)],
    networkId: r.networkId ?? ids.id('network', '', r.network),
    azId: r.az === null ? r.azId : r.azId ?? ids.id('az', '', r.az),
    numId: r.numId ?? ids.id('instance', r.deployment, r.id),
  };
}

/** Takes the revision row lock (creating the row if the tables were emptied); returns the head. */
async function lockRevision(tx: Queryable): Promise<number> {
  const { rows } = await tx.query<{ revision: number | string }>(
    `INSERT INTO presence_revision (id, revision) VALUES (1, 0)
       ON CONFLICT (id) DO UPDATE SET revision = presence_revision.revision
     RETURNING revision`,
  );
  return Number(rows[0].revision);
}

async function setRevision(tx: Queryable, revision: number): Promise<void> {
  await tx.query(
    'WITH bumped AS (UPDATE presence_revision SET revision = $1 WHERE id = 1 RETURNING revision) SELECT pg_notify($2, revision::text) FROM bumped',
    [revision, NOTIFY_CHANNEL],
  );
}

/**
 * Writes `changed` rows (revisions head + 1, head + 2, … in list order) and the `gone` ones
 * as tombstones (after them) in ONE statement, which takes the revision row lock, so the
 * lock is held for that statement alone — never across a round trip to a client, whose
 * slowness would otherwise hold up every other writer — and revisions commit in the order
 * they are given (a reader polling `revision > last` never skips one). One upsert carries
 * both, as engines like CockroachDB refuse two modifications of one table in a statement.
 * Returns the new head.
 */
async function writeRows(db: Queryable, changed: PresenceRecord[], gone: PresenceRecord[]): Promise<number> {
  const rows = [...changed, ...gone].map((r, i) => {
    const fields: StoredInstance = r;
    const row: Record<string, unknown> = { n: i + 1, routes: r.routes, deleted: i >= changed.length };
    for (const f of STORED_FIELDS) row[f.db.column] = fields[f.key];
    return row;
  });
  const { rows: result } = await db.query<{ revision: number | string }>(
    `WITH head AS (
       INSERT INTO presence_revision (id, revision) VALUES (1, $2::bigint)
         ON CONFLICT (id) DO UPDATE SET revision = presence_revision.revision + $2::bigint
       RETURNING revision - $2::bigint AS base),
     written AS (
       INSERT INTO presences (${ROW_COLUMNS})
         SELECT ${FIELD_COLUMNS.map((c) => `r.${c}`).join(', ')}, r.routes, head.base + r.n, r.deleted
           FROM head, jsonb_to_recordset($1::jsonb)
             AS r(n int, ${STORED_FIELDS.map((f) => `${f.db.column} ${f.db.type}`).join(', ')}, routes jsonb, deleted boolean)
       ON CONFLICT (id) DO UPDATE SET ${[...FIELD_COLUMNS.filter((c) => c !== 'id'), 'routes', 'revision', 'deleted'].map((c) => `${c} = EXCLUDED.${c}`).join(', ')})
     SELECT base + $2::bigint AS revision, pg_notify($3, (base + $2::bigint)::text) FROM head`,
    [JSON.stringify(rows), rows.length, NOTIFY_CHANNEL],
  );
  return Number(result[0].revision);
}

/**
 * `writeInstances` once the ids are prepared, on `db` or inside its transaction. The rows
 * are read without a lock: only this cell's registrar writes its live rows, and the
 * reaper, which may tombstone them meanwhile, also deletes the cell row — so the next
 * heartbeat re-registers and rewrites them all.
 */
async function writeCell(db: Queryable, cellId: string, registrations: Registration[], ids: IdAllocator): Promise<WriteResult> {
  const wanted = registrations.map((r) => r.id);
  const { rows } = await db.query<DbPresenceRow>(
    `SELECT ${ROW_COLUMNS} FROM presences WHERE (cell_id = $1 AND NOT deleted) OR id = ANY($2::text[])`,
    [cellId, wanted],
  );
  const existing = new Map(rows.map((r) => [r.id, fromDb(r)]));
  // One row per id (the last registration of an id wins), in registration order.
  const records = [...new Map(registrations.map((r) => [r.id, toRecord(cellId, r, ids)])).values()];
  const changed = records.filter((record) => {
    const current = existing.get(record.id);
    return !current || current.deleted || recordKey(current) !== recordKey(record);
  });
  const kept = new Set(wanted);
  // A tombstone keeps the row's last fields, so one upsert writes both.
  const gone = rows.filter((r) => r.cell_id === cellId && !r.deleted && !kept.has(r.id)).map(fromDb).sort((x, y) => (x.id < y.id ? -1 : 1));
  if (changed.length + gone.length === 0) {
    const { rows: head } = await db.query<{ revision: number | string }>('SELECT revision FROM presence_revision WHERE id = 1');
    return { written: 0, tombstoned: 0, revision: head.length ? Number(head[0].revision) : 0 };
  }
  return { written: changed.length, tombstoned: gone.length, revision: await writeRows(db, changed, gone) };
}

export class PresenceStore {
  /** `prepare` runs before every operation (the schema migration until it has succeeded once). */
  constructor(readonly db: Db, private readonly prepare: () => Promise<void> = () => Promise.resolve()) {}

  /** Claims the cell for `owner` (a fresh uuid per process) and counts as a heartbeat. */
  async registerCell(cell: CellRegistration): Promise<{ previousOwner: string | null }> {
    await this.prepare();
    const { rows } = await this.db.query<{ previous: string | null }>(
      `WITH prev AS (SELECT owner::text AS previous FROM cells WHERE cell_id = $1)
       INSERT INTO cells (cell_id, owner, address, ttl_seconds, heartbeat_index, heartbeat_at) VALUES ($1, $2, $3, $4, 1, now())
         ON CONFLICT (cell_id) DO UPDATE SET owner = EXCLUDED.owner, address = EXCLUDED.address,
           ttl_seconds = EXCLUDED.ttl_seconds, heartbeat_index = cells.heartbeat_index + 1, heartbeat_at = now()
       RETURNING (SELECT previous FROM prev)`,
      [cell.cellId, cell.owner, cell.address, cell.ttlMs / 1000],
    );
    return { previousOwner: rows[0]?.previous ?? null };
  }

  /**
   * One heartbeat: bumps heartbeat_index if the cell is still ours. Returns null when the
   * row is gone or owned by someone else, else how many live instance rows the cell has.
   */
  async heartbeat(cellId: string, owner: string): Promise<{ liveInstances: number } | null> {
    await this.prepare();
    const { rows } = await this.db.query<{ live: number | string }>(
      `UPDATE cells SET heartbeat_index = heartbeat_index + 1, heartbeat_at = now() WHERE cell_id = $1 AND owner = $2
       RETURNING (SELECT count(*) FROM presences p WHERE p.cell_id = $1 AND NOT p.deleted) AS live`,
      [cellId, owner],
    );
    return rows.length ? { liveInstances: Number(rows[0].live) } : null;
  }

  /**
   * Makes the cell's live rows exactly `registrations`: rows that differ are written,
   * rows no longer registered are tombstoned, identical rows are left alone.
   */
  async writeInstances(cellId: string, registrations: Registration[]): Promise<WriteResult> {
    await this.prepare();
    const needs = registrations.map(idNeeds);
    const ids = new IdAllocator(needs.flatMap((n) => n.pins), needs.flatMap((n) => n.names));
    // Names seen before (every change after a cell's registration): no transaction, and the
    // revision row is locked by the one writing statement alone.
    if (await ids.loadKnown(this.db)) return writeCell(this.db, cellId, registrations, ids);
    // New names (a registration): numbered and written in one transaction under the lock,
    // as one step — also for the embedded engine, which runs one transaction at a time, so
    // no sync reads the database between the numbering and the rows.
    return this.db.transaction(async (tx) => {
      await lockRevision(tx);
      await ids.allocate(tx);
      return writeCell(tx, cellId, registrations, ids);
    });
  }

  async listCells(): Promise<CellObservation[]> {
    await this.prepare();
    const { rows } = await this.db.query<{ cell_id: string; owner: string; heartbeat_index: number | string; ttl_seconds: number }>(
      'SELECT cell_id, owner::text AS owner, heartbeat_index, ttl_seconds FROM cells',
    );
    return rows.map((r) => ({ cellId: r.cell_id, owner: r.owner, heartbeatIndex: Number(r.heartbeat_index), ttlMs: r.ttl_seconds * 1000 }));
  }

  /**
   * Expires a cell only if its (owner, heartbeat_index) is still what the reaper saw:
   * removes the cell row and tombstones its instances in one transaction. Returns the
   * number of instances tombstoned, or null when the cell moved on (compare-and-set lost).
   */
  async expireCell(cell: CellObservation): Promise<number | null> {
    return this.removeCell('cell_id = $1 AND owner = $2 AND heartbeat_index = $3', [cell.cellId, cell.owner, cell.heartbeatIndex]);
  }

  /**
   * A clean shutdown: removes the cell row if `owner` still holds it and tombstones its
   * instances at once, so other nodes drop them at their next sync instead of after the
   * TTL. Returns the number of instances tombstoned, or null when the cell is not ours.
   */
  async deregisterCell(cellId: string, owner: string): Promise<number | null> {
    return this.removeCell('cell_id = $1 AND owner = $2', [cellId, owner]);
  }

  /** Deletes the cell row matching `where` ($1 is the cell id) and tombstones its live instances, in one transaction. */
  private async removeCell(where: string, params: [string, ...SqlValue[]]): Promise<number | null> {
    await this.prepare();
    return this.db.transaction(async (tx) => {
      const head = await lockRevision(tx);
      const gone = await tx.query(`DELETE FROM cells WHERE ${where}`, params);
      if (gone.rowCount === 0) return null;
      const { rows } = await tx.query(
        `WITH doomed AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM presences WHERE cell_id = $1 AND NOT deleted)
         UPDATE presences p SET deleted = true, revision = $2 + doomed.n FROM doomed WHERE p.id = doomed.id
         RETURNING p.id`,
        [params[0], head],
      );
      if (rows.length) await setRevision(tx, head + rows.length);
      return rows.length;
    });
  }

  /**
   * Every cell as an operator lists them (like `consul members`): seconds since its last
   * heartbeat by the database's own clock, its live instances, and whether its process
   * holds the reaper lock.
   */
  async cellMembers(): Promise<CellMember[]> {
    await this.prepare();
    const { rows } = await this.db.query<{
      cell_id: string; address: string | null; ttl_seconds: number; heartbeat_index: number | string;
      age: number | string; instances: number | string; reaper: boolean;
    }>(
      `SELECT c.cell_id, c.address, c.ttl_seconds, c.heartbeat_index,
              extract(epoch FROM now() - c.heartbeat_at)::float8 AS age,
              (SELECT count(*) FROM presences p WHERE p.cell_id = c.cell_id AND NOT p.deleted) AS instances,
              EXISTS (SELECT 1 FROM locks l WHERE l.path = $1 AND l.owner = c.owner::text) AS reaper
         FROM cells c ORDER BY c.cell_id`,
      [REAPER_LOCK],
    );
    return rows.map((r) => ({
      cellId: r.cell_id, address: r.address, ttlSeconds: r.ttl_seconds, heartbeats: Number(r.heartbeat_index),
      heartbeatAgeSeconds: Math.max(0, Number(r.age)), instances: Number(r.instances), reaperHolder: r.reaper,
    }));
  }

  /** The id of this presence database, which marks the topology files synced from it. */
  async clusterId(): Promise<string> {
    await this.prepare();
    const { rows } = await this.db.query<{ cluster: string }>('SELECT cluster::text AS cluster FROM presence_cluster WHERE id = 1');
    if (!rows.length) throw new Error('presence_cluster has no row (schema not migrated?)');
    return rows[0].cluster;
  }

  /** The newest revision, and below which tombstones may have been purged. */
  async head(): Promise<{ revision: number; purgedBelow: number }> {
    await this.prepare();
    const { rows } = await this.db.query<{ revision: number | string; purged_below: number | string }>('SELECT revision, purged_below FROM presence_revision WHERE id = 1');
    return rows.length ? { revision: Number(rows[0].revision), purgedBelow: Number(rows[0].purged_below) } : { revision: 0, purgedBelow: 0 };
  }

  /**
   * Deletes tombstones more than `keep` revisions old and records the cut, so a syncer
   * that was further behind takes a snapshot instead of missing those deletions.
   */
  async purgeTombstones(keep: number): Promise<number> {
    await this.prepare();
    return this.db.transaction(async (tx) => {
      const cutoff = (await lockRevision(tx)) - keep;
      if (cutoff <= 0) return 0;
      const { rowCount } = await tx.query('DELETE FROM presences WHERE deleted AND revision <= $1', [cutoff]);
      if (rowCount) await tx.query('UPDATE presence_revision SET purged_below = GREATEST(purged_below, $1) WHERE id = 1', [cutoff]);
      return rowCount;
    });
  }

  /** The current revision of one row; null if the row does not exist. */
  async rowRevision(id: string): Promise<number | null> {
    await this.prepare();
    const { rows } = await this.db.query<{ revision: number | string }>('SELECT revision FROM presences WHERE id = $1', [id]);
    return rows.length ? Number(rows[0].revision) : null;
  }

  /**
   * The head and the current revision of one row (null: it does not exist), in one round
   * trip: what a sync pass asks first, so a fleet polling the database costs one statement
   * per node and pass while nothing changes.
   */
  async headAndRow(id: string): Promise<{ head: { revision: number; purgedBelow: number }; rowRevision: number | null }> {
    await this.prepare();
    const { rows } = await this.db.query<{ revision: number | string | null; purged_below: number | string | null; row_revision: number | string | null }>(
      `SELECT h.revision, h.purged_below, (SELECT p.revision FROM presences p WHERE p.id = $1) AS row_revision
         FROM (SELECT 1) one LEFT JOIN presence_revision h ON h.id = 1`,
      [id],
    );
    const row = rows.at(0);
    return {
      head: { revision: Number(row?.revision ?? 0), purgedBelow: Number(row?.purged_below ?? 0) },
      rowRevision: row?.row_revision == null ? null : Number(row.row_revision),
    };
  }

  /** Rows (tombstones included) changed after `revision`, oldest first. */
  async changesSince(revision: number, limit: number): Promise<PresenceRow[]> {
    await this.prepare();
    const { rows } = await this.db.query<DbPresenceRow>(
      `SELECT ${ROW_COLUMNS} FROM presences WHERE revision > $1 ORDER BY revision LIMIT $2`,
      [revision, limit],
    );
    return rows.map(fromDb);
  }

  /**
   * Every live row and the newest row's (revision, id), from one consistent snapshot.
   * With `onRow`, rows are handed over page by page instead of collected (`rows` is empty),
   * so a big fleet's snapshot is never held whole. With `slot`, the snapshot first takes
   * one of `slot.count` transaction-level advisory locks (any free one, tried in a random
   * order) and resolves to null without reading when all are taken: the fleet-wide bound
   * on snapshots at once (it holds through PgBouncer's transaction pooling too).
   */
  async snapshot(onRow?: (row: PresenceRow) => void): Promise<{ rows: PresenceRow[]; revision: number; lastId: string | null }>;
  async snapshot(onRow: ((row: PresenceRow) => void) | undefined, slot: { count: number }): Promise<{ rows: PresenceRow[]; revision: number; lastId: string | null } | null>;
  async snapshot(onRow?: (row: PresenceRow) => void, slot?: { count: number }): Promise<{ rows: PresenceRow[]; revision: number; lastId: string | null } | null> {
    await this.prepare();
    return this.db.transaction(async (tx) => {
      if (slot && !(await takeSnapshotSlot(tx, slot.count))) return null;
      const newest = await tx.query<{ id: string; revision: number | string }>('SELECT id, revision FROM presences ORDER BY revision DESC LIMIT 1');
      const head = await tx.query<{ revision: number | string }>('SELECT revision FROM presence_revision WHERE id = 1');
      // Fetched in pages from one cursor (one scan), so no single round trip of a big
      // fleet's snapshot runs into the pool's query_timeout.
      await tx.query(`DECLARE presence_snapshot NO SCROLL CURSOR FOR SELECT ${ROW_COLUMNS} FROM presences WHERE NOT deleted ORDER BY id`);
      const rows: PresenceRow[] = [];
      for (;;) {
        const page = await tx.query<DbPresenceRow>(`FETCH ${SNAPSHOT_PAGE} FROM presence_snapshot`);
        for (const row of page.rows) {
          if (onRow) onRow(fromDb(row));
          else rows.push(fromDb(row));
        }
        if (page.rows.length < SNAPSHOT_PAGE) break;
      }
      const top = newest.rows.at(0);
      return {
        rows,
        revision: top ? Number(top.revision) : head.rows.length ? Number(head.rows[0].revision) : 0,
        lastId: top?.id ?? null,
      };
    }, 'repeatable read');
  }

  /**
   * Acquires or renews a TTL lock (locket semantics). A lock held by another owner is
   * taken over only if `expired` says so (the caller's observation of non-renewal).
   */
  async acquireLock(path: string, owner: string, ttlMs: number, expired: (holder: LockHolder) => boolean): Promise<'acquired' | 'renewed' | 'collision'> {
    await this.prepare();
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ owner: string; modified_index: number | string; modified_id: string; ttl: number }>(
        'SELECT owner, modified_index, modified_id::text AS modified_id, ttl FROM locks WHERE path = $1 FOR UPDATE',
        [path],
      );
      const held = rows.at(0);
      if (!held) {
        const inserted = await tx.query(
          `INSERT INTO locks (path, owner, modified_index, modified_id, ttl) VALUES ($1, $2, 1, gen_random_uuid(), $3)
           ON CONFLICT (path) DO NOTHING`,
          [path, owner, ttlMs / 1000],
        );
        return inserted.rowCount === 1 ? 'acquired' : 'collision';
      }
      const mine = held.owner === owner;
      const holder = { owner: held.owner, modifiedIndex: Number(held.modified_index), modifiedId: held.modified_id, ttlMs: held.ttl * 1000 };
      if (!mine && !expired(holder)) return 'collision';
      await tx.query(
        `UPDATE locks SET owner = $2, ttl = $3, modified_index = modified_index + 1,
           modified_id = CASE WHEN owner = $2 THEN modified_id ELSE gen_random_uuid() END
         WHERE path = $1`,
        [path, owner, ttlMs / 1000],
      );
      return mine ? 'renewed' : 'acquired';
    });
  }

  async releaseLock(path: string, owner: string): Promise<boolean> {
    await this.prepare();
    const { rowCount } = await this.db.query('DELETE FROM locks WHERE path = $1 AND owner = $2', [path, owner]);
    return rowCount === 1;
  }
}
