// The presence modules' config sections: `database` (which one), `sync` (the topology
// followed from it), `registrar` and `reaper`. Their `enabled` keys follow the database,
// a rule across sections that the composed config schema applies (src/config/schema.ts).
// Declared apart from the modules so that the config schema loads no database code.
import { z } from 'zod';
import { filePath, seconds } from '../util/config-types.ts';
import { NatsConfigError, natsConnectionOptions } from '../util/nats-options.ts';

const FOLLOWS_DATABASE = 'unset means on exactly when there is a database (`database.url`, or `database.embedded`); on without one is an error.';

export const databaseConfigSchema = z.strictObject({
  url: z.string().optional().describe('PostgreSQL URL (`postgres://user:password@host:5432/presence`); unset means the embedded database, if `database.embedded`.'),
  embedded: z.boolean()
    .default(true)
    .describe('With no `database.url`: true runs the embedded PostgreSQL (PGlite); false means there is no database, so sync, registrar and reaper are off (the container\'s default: a DNS sidecar fed a file).'),
  embedded_dir: filePath().default('data/pglite').describe("The embedded database's data directory."),
})
  .prefault({})
  .describe('The presence database: a PostgreSQL server, the embedded one, or none.');

export const syncConfigSchema = z.strictObject({
  enabled: z.boolean().optional().describe(`Keeps the topology file equal to the database (a snapshot and journal in \`topology.file\`; never a file someone else wrote); ${FOLLOWS_DATABASE}`),
  interval: seconds.default(1).describe('Seconds between incremental sync passes (on a PostgreSQL server, `LISTEN/NOTIFY` also wakes the syncer at once; with the fan-out, every change message does).'),
  database_url: z.string().min(1).optional().describe("Where this node's syncer reads the database, if not `database.url`: a hot-standby replica, or PgBouncer. With the fan-out, only the fallback (NATS down) and a publisher candidate read it; a candidate needs a direct connection to the primary (it LISTENs)."),
  nats_url: z.string().min(1).optional().describe('The fan-out: follow the presence changes over NATS JetStream instead of reading the database (one publisher reads each change once; every node reads NATS, and falls back to the database while NATS cannot answer). `nats://host:4222`, a comma-separated list of servers, credentials in the URL accepted. Unset: every node reads the database. It may name the same servers as `routes.nats_url`; JetStream must be enabled on them.'),
  nats_prefix: z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'letters, digits, "-", "_" and dots between tokens').default('presence-dns')
    .describe('The fan-out\'s names on NATS: subjects `<prefix>.changes` and `<prefix>.head`, stream `<PREFIX>_CHANGES`, object store `<prefix>-snapshots`. One presence database per prefix.'),
  publisher: z.boolean().default(false).describe('With the fan-out: this node is a publisher candidate. One candidate at a time (it holds the SQL lock `sync-publisher`) reads the changes from the database and publishes them. Make two or three nodes candidates, with `sync.database_url` reaching the primary directly.'),
  snapshot_every: z.number().int().min(100).default(10_000).describe('With the fan-out: the publisher replaces the published snapshot after this many changed rows (a node that is new, or away longer than the stream keeps, starts from it).'),
  snapshot_slots: z.number().int().min(1).default(4).describe('Snapshots read from the database at once, fleet-wide, by nodes falling back to it (advisory locks; the rest wait with jittered backoff), so a fleet whose NATS is down never stampedes the database.'),
})
  .superRefine((sync, ctx) => {
    if (sync.publisher && sync.nats_url === undefined) {
      ctx.addIssue({ code: 'custom', path: ['publisher'], message: 'sync.publisher is true, but there is no sync.nats_url to publish to' });
    }
    if (sync.nats_url === undefined) return;
    try {
      natsConnectionOptions({ nats_url: sync.nats_url }, 'sync');
    } catch (err) {
      if (!(err instanceof NatsConfigError)) throw err;
      ctx.addIssue({ code: 'custom', path: ['nats_url'], message: err.reason });
    }
  })
  .prefault({})
  .describe('The syncer: the topology file followed from the presence database, directly or through the fan-out over NATS.');

export const registrarConfigSchema = z.strictObject({
  enabled: z.boolean().optional().describe(`Registers this node's instances (\`registrations.dir\` and the API) in the database; ${FOLLOWS_DATABASE}`),
  cell_id: z.string().optional().describe("This node's cell; unset means the host name."),
  address: z.string().optional().describe("This node's address, stored with its cell."),
  ttl: seconds.default(15).describe("Seconds without a heartbeat before this node's cell expires with its instances; it heartbeats every `ttl`/3. Also the TTL of the reaper lock."),
})
  .prefault({})
  .describe("The registrar: this node's cell and instances in the database.");

export const reaperConfigSchema = z.strictObject({
  enabled: z.boolean().optional().describe(`Takes part in the reaper election: the node holding the lock expires cells that stopped heartbeating; ${FOLLOWS_DATABASE}`),
  max_expire_fraction: z.number().min(0).max(1)
    .default(0.3)
    .describe('Mass-expiry guard: a pass that would expire more than one cell and more than this fraction of the live cells expires none (many cells falling silent together is more often a partition than a mass death). The syncer applies the same guard to cells a snapshot drops.'),
  guard_hold: z.number().positive()
    .default(10)
    .describe("Multiple of the cells' TTL after which a tripped mass-expiry guard lets the same silent cells go."),
})
  .prefault({})
  .describe('The reaper: cell expiry and its mass-expiry guard.');

export type DatabaseConfig = z.infer<typeof databaseConfigSchema>;

/** The sections the presence modules read. */
export interface PresenceConfig {
  database: DatabaseConfig;
  sync: z.infer<typeof syncConfigSchema>;
  registrar: z.infer<typeof registrarConfigSchema>;
  reaper: z.infer<typeof reaperConfigSchema>;
}
