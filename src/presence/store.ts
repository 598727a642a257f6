// The presence tables in SQL: cells and heartbeats, instance rows written only when they
// change, revisions from one counter row updated inside each writing transaction (which
// serialises writers, so a reader polling `revision > last` never skips a committed
// change), numeric-id allocation, locket-style TTL locks and compare-and-set expiry.
import type { RouteRegistration, Registration } from '../registrations/types.ts';
import type { Health } from '../topology/types.ts';
import type { Db, Queryable, Row } from './db.ts';
import type { CellObservation, LockHolder } from './decisions.ts';

export const NOTIFY_CHANNEL = 'presence_dns_revision';

/**
 * One instance row: a registration as the database keeps it — owned by a cell, with its
 * numeric ids resolved. The route emitter's extras stay local and are not stored.
 */
export interface PresenceRecord extends Omit<Registration, 'groupIds' | 'app' | 'isolationSegment' | 'tags'> {
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

export interface WriteResult {
  written: number;
  tombstoned: number;
  revision: number;
}

const ROW_COLUMNS = `id, cell_id, group_name, group_ids, network, network_id, deployment, az, az_id,
  instance_index, num_id, ip, domain, agent_id, health, ports, routes, revision, deleted`;

interface DbPresenceRow extends Row {
  id: string;
  cell_id: string;
  group_name: string;
  group_ids: number[];
  network: string;
  network_id: number | null;
  deployment: string;
  az: string | null;
  az_id: number | null;
  instance_index: number | null;
  num_id: number | null;
  ip: string;
  domain: string;
  agent_id: string | null;
  health: Health;
  ports: Record<string, number>;
  routes: RouteRegistration[];
  revision: number | string;
  deleted: boolean;
}

function fromDb(row: DbPresenceRow): PresenceRow {
  return {
    id: row.id,
    cellId: row.cell_id,
    group: row.group_name,
    groupIds: row.group_ids,
    network: row.network,
    networkId: row.network_id,
    deployment: row.deployment,
    az: row.az,
    azId: row.az_id,
    index: row.instance_index,
    numId: row.num_id,
    ip: row.ip,
    domain: row.domain,
    agentId: row.agent_id,
    health: row.health,
    ports: row.ports,
    routes: row.routes,
    revision: Number(row.revision),
    deleted: row.deleted,
  };
}

/** A canonical text of what DNS and routes see of a record, to tell a real change. */
export function recordKey(r: PresenceRecord): string {
  const ports = Object.keys(r.ports).sort().map((k) => [k, r.ports[k]]);
  return JSON.stringify([r.id, r.cellId, r.group, r.groupIds, r.network, r.networkId, r.deployment, r.az, r.azId,
    r.index, r.numId, r.ip, r.domain, r.agentId, r.health, ports, r.routes]);
}

type IdKind = 'group' | 'az' | 'network' | 'instance';

/** Numeric ids of names, allocated on first use; callers hold the revision row lock. */
class IdAllocator {
  private readonly known = new Map<string, number>();
  constructor(private readonly tx: Queryable) {}

  private static key(kind: IdKind, scope: string, name: string): string {
    return `${kind}\u0000${scope}\u0000${name}`;
  }

  async load(wanted: Array<[IdKind, string, string]>): Promise<void> {
    if (wanted.length === 0) return;
    const { rows } = await this.tx.query<{ kind: IdKind; scope: string; name: string; id: number }>(
      `SELECT n.kind, n.scope, n.name, n.id FROM numeric_ids n
         JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(kind, scope, name) USING (kind, scope, name)`,
      [wanted.map((w) => w[0]), wanted.map((w) => w[1]), wanted.map((w) => w[2])],
    );
    for (const r of rows) this.known.set(IdAllocator.key(r.kind, r.scope, r.name), r.id);
  }

  /** Records a pin so later allocations never hand the same number to another name. */
  async pin(kind: IdKind, scope: string, name: string, id: number): Promise<number> {
    await this.tx.query('INSERT INTO numeric_ids (kind, scope, name, id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [kind, scope, name, id]);
    return id;
  }

  async get(kind: IdKind, scope: string, name: string): Promise<number> {
    const key = IdAllocator.key(kind, scope, name);
    const known = this.known.get(key);
    if (known !== undefined) return known;
    const { rows } = await this.tx.query<{ id: number }>(
      `INSERT INTO numeric_ids (kind, scope, name, id)
         SELECT $1, $2, $3, COALESCE(MAX(id), 0) + 1 FROM numeric_ids WHERE kind = $1 AND scope = $2
       RETURNING id`,
      [kind, scope, name],
    );
    this.known.set(key, rows[0].id);
    return rows[0].id;
  }
}

async function toRecord(cellId: string, r: Registration, ids: IdAllocator): Promise<PresenceRecord> {
  return {
    id: r.id,
    cellId,
    group: r.group,
    groupIds: r.groupIds ?? [await ids.get('group', '', r.group)],
    network: r.network,
    networkId: r.networkId !== null ? await ids.pin('network', '', r.network, r.networkId) : await ids.get('network', '', r.network),
    deployment: r.deployment,
    az: r.az,
    azId: r.az === null ? r.azId : r.azId !== null ? await ids.pin('az', '', r.az, r.azId) : await ids.get('az', '', r.az),
    index: r.index,
    numId: r.numId !== null ? await ids.pin('instance', r.deployment, r.id, r.numId) : await ids.get('instance', r.deployment, r.id),
    ip: r.ip,
    domain: r.domain,
    agentId: r.agentId,
    health: r.health,
    ports: r.ports,
    routes: r.routes,
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
  await tx.query('UPDATE presence_revision SET revision = $1 WHERE id = 1', [revision]);
  await tx.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, String(revision)]);
}

async function upsertRow(tx: Queryable, r: PresenceRecord, revision: number): Promise<void> {
  await tx.query(
    `INSERT INTO presences (${ROW_COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::jsonb, $17::jsonb, $18, false)
     ON CONFLICT (id) DO UPDATE SET cell_id = EXCLUDED.cell_id, group_name = EXCLUDED.group_name,
       group_ids = EXCLUDED.group_ids, network = EXCLUDED.network, network_id = EXCLUDED.network_id,
       deployment = EXCLUDED.deployment, az = EXCLUDED.az, az_id = EXCLUDED.az_id,
       instance_index = EXCLUDED.instance_index, num_id = EXCLUDED.num_id, ip = EXCLUDED.ip,
       domain = EXCLUDED.domain, agent_id = EXCLUDED.agent_id, health = EXCLUDED.health,
       ports = EXCLUDED.ports, routes = EXCLUDED.routes, revision = EXCLUDED.revision, deleted = false`,
    [r.id, r.cellId, r.group, r.groupIds, r.network, r.networkId, r.deployment, r.az, r.azId, r.index, r.numId,
      r.ip, r.domain, r.agentId, r.health, JSON.stringify(r.ports), JSON.stringify(r.routes), revision],
  );
}

export class PresenceStore {
  /** `prepare` runs before every operation (the schema migration until it has succeeded once). */
  constructor(readonly db: Db, private readonly prepare: () => Promise<void> = async () => undefined) {}

  /** Claims the cell for `owner` (a fresh uuid per process) and counts as a heartbeat. */
  async registerCell(cell: CellRegistration): Promise<{ previousOwner: string | null }> {
    await this.prepare();
    const { rows } = await this.db.query<{ previous: string | null }>(
      `WITH prev AS (SELECT owner::text AS previous FROM cells WHERE cell_id = $1)
       INSERT INTO cells (cell_id, owner, address, ttl_seconds, heartbeat_index) VALUES ($1, $2, $3, $4, 1)
         ON CONFLICT (cell_id) DO UPDATE SET owner = EXCLUDED.owner, address = EXCLUDED.address,
           ttl_seconds = EXCLUDED.ttl_seconds, heartbeat_index = cells.heartbeat_index + 1
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
      `UPDATE cells SET heartbeat_index = heartbeat_index + 1 WHERE cell_id = $1 AND owner = $2
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
    return this.db.transaction(async (tx) => {
      const head = await lockRevision(tx);
      const ids = registrations.map((r) => r.id);
      const { rows } = await tx.query<DbPresenceRow>(
        `SELECT ${ROW_COLUMNS} FROM presences WHERE (cell_id = $1 AND NOT deleted) OR id = ANY($2::text[])`,
        [cellId, ids],
      );
      const existing = new Map(rows.map((r) => [r.id, fromDb(r)]));
      const allocator = new IdAllocator(tx);
      await allocator.load(registrations.flatMap((r): Array<[IdKind, string, string]> => [
        ['group', '', r.group], ['network', '', r.network], ['instance', r.deployment, r.id], ...(r.az ? [['az', '', r.az] as [IdKind, string, string]] : []),
      ]));
      let revision = head;
      let written = 0;
      for (const registration of registrations) {
        const record = await toRecord(cellId, registration, allocator);
        const current = existing.get(record.id);
        if (current && !current.deleted && recordKey(current) === recordKey(record)) continue;
        await upsertRow(tx, record, ++revision);
        written++;
      }
      const wanted = new Set(ids);
      const gone = rows.filter((r) => r.cell_id === cellId && !r.deleted && !wanted.has(r.id)).map((r) => r.id).sort();
      for (const id of gone) await tx.query('UPDATE presences SET deleted = true, revision = $2 WHERE id = $1', [id, ++revision]);
      if (revision !== head) await setRevision(tx, revision);
      return { written, tombstoned: gone.length, revision };
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
    await this.prepare();
    return this.db.transaction(async (tx) => {
      const head = await lockRevision(tx);
      const gone = await tx.query('DELETE FROM cells WHERE cell_id = $1 AND owner = $2 AND heartbeat_index = $3', [cell.cellId, cell.owner, cell.heartbeatIndex]);
      if (gone.rowCount === 0) return null;
      const { rows } = await tx.query(
        `WITH doomed AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM presences WHERE cell_id = $1 AND NOT deleted)
         UPDATE presences p SET deleted = true, revision = $2 + doomed.n FROM doomed WHERE p.id = doomed.id
         RETURNING p.id`,
        [cell.cellId, head],
      );
      if (rows.length) await setRevision(tx, head + rows.length);
      return rows.length;
    });
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

  /** Rows (tombstones included) changed after `revision`, oldest first. */
  async changesSince(revision: number, limit: number): Promise<PresenceRow[]> {
    await this.prepare();
    const { rows } = await this.db.query<DbPresenceRow>(
      `SELECT ${ROW_COLUMNS} FROM presences WHERE revision > $1 ORDER BY revision LIMIT $2`,
      [revision, limit],
    );
    return rows.map(fromDb);
  }

  /** Every live row and the newest row's (revision, id), from one consistent snapshot. */
  async snapshot(): Promise<{ rows: PresenceRow[]; revision: number; lastId: string | null }> {
    await this.prepare();
    return this.db.transaction(async (tx) => {
      const newest = await tx.query<{ id: string; revision: number | string }>('SELECT id, revision FROM presences ORDER BY revision DESC LIMIT 1');
      const head = await tx.query<{ revision: number | string }>('SELECT revision FROM presence_revision WHERE id = 1');
      const { rows } = await tx.query<DbPresenceRow>(`SELECT ${ROW_COLUMNS} FROM presences WHERE NOT deleted ORDER BY id`);
      const top = newest.rows[0];
      return {
        rows: rows.map(fromDb),
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
      const held = rows[0];
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
