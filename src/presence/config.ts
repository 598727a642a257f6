// The presence modules' config sections: `database` (which one), `sync` (the topology
// followed from it), `registrar` and `reaper`. Their `enabled` keys follow the database,
// a rule across sections that the composed config schema applies (src/config/schema.ts).
// Declared apart from the modules so that the config schema loads no database code.
import { z } from 'zod';
import { filePath, seconds } from '../util/config-types.ts';

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
  interval: seconds.default(1).describe('Seconds between incremental sync passes (on a PostgreSQL server, `LISTEN/NOTIFY` also wakes the syncer at once).'),
})
  .prefault({})
  .describe('The syncer: the topology file followed from the presence database.');

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
