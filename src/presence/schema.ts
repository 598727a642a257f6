// Schema migrations, run at every start. Each step is idempotent (IF NOT EXISTS) and the
// whole run is one transaction holding a transaction-level advisory lock, so daemons
// starting together do not race — also through PgBouncer's transaction pooling, where a
// session-level lock would stay on a pooled server connection (or be taken on one and
// released on another).
import type { Db } from './db.ts';

/** Arbitrary, fixed: the advisory lock key for migrations ("pdns" in ASCII). */
const MIGRATION_LOCK = 0x70646e73;

const MIGRATIONS: string[] = [
  `CREATE TABLE IF NOT EXISTS presence_revision (
     id int PRIMARY KEY CHECK (id = 1),
     revision bigint NOT NULL
   )`,
  `CREATE TABLE IF NOT EXISTS cells (
     cell_id text PRIMARY KEY,
     owner uuid NOT NULL,
     address text,
     ttl_seconds double precision NOT NULL,
     heartbeat_index bigint NOT NULL DEFAULT 0
   )`,
  `CREATE TABLE IF NOT EXISTS presences (
     id text PRIMARY KEY,
     cell_id text NOT NULL,
     group_name text NOT NULL,
     group_ids int[] NOT NULL,
     network text NOT NULL,
     network_id int,
     deployment text NOT NULL,
     az text,
     az_id int,
     instance_index int,
     num_id int,
     ip text NOT NULL,
     domain text NOT NULL,
     agent_id text,
     health text NOT NULL,
     ports jsonb NOT NULL,
     routes jsonb NOT NULL,
     revision bigint NOT NULL,
     deleted boolean NOT NULL DEFAULT false
   )`,
  // Tombstones at or below this revision have been purged: a syncer behind it must snapshot.
  'ALTER TABLE presence_revision ADD COLUMN IF NOT EXISTS purged_below bigint NOT NULL DEFAULT 0',
  'CREATE UNIQUE INDEX IF NOT EXISTS presences_revision ON presences (revision)',
  'CREATE INDEX IF NOT EXISTS presences_cell ON presences (cell_id) WHERE NOT deleted',
  `CREATE TABLE IF NOT EXISTS locks (
     path text PRIMARY KEY,
     owner text NOT NULL,
     value text NOT NULL DEFAULT '',
     modified_index bigint NOT NULL,
     modified_id uuid NOT NULL,
     ttl double precision NOT NULL
   )`,
  // Numeric ids for names (kind: group, az, network; instance ids per deployment).
  `CREATE TABLE IF NOT EXISTS numeric_ids (
     kind text NOT NULL,
     scope text NOT NULL,
     name text NOT NULL,
     id int NOT NULL,
     PRIMARY KEY (kind, scope, name),
     UNIQUE (kind, scope, id)
   )`,
  // The id of this database: the syncer marks the files it writes with it, and never
  // replaces a file synced from another database.
  `CREATE TABLE IF NOT EXISTS presence_cluster (
     id int PRIMARY KEY CHECK (id = 1),
     cluster uuid NOT NULL DEFAULT gen_random_uuid()
   )`,
  'INSERT INTO presence_cluster (id) VALUES (1) ON CONFLICT DO NOTHING',
  // When each cell last heartbeat, by the database's clock: what `GET /v1/cells` shows as its
  // age. Expiry never reads it (the reaper keeps to its own monotonic clock).
  'ALTER TABLE cells ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz NOT NULL DEFAULT now()',
];

export async function migrate(db: Db): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    for (const statement of MIGRATIONS) await tx.query(statement);
  });
}
