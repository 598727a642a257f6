// The configuration schema, composed of the sections the modules declare (each in its own
// config.ts, with its keys' defaults and descriptions), plus the rules across sections.
// Every key has a default; unknown keys are errors, so a typo is caught at start, not
// ignored. config/schema.json and docs/configuration.md are generated from it (reference.ts).
import { z } from 'zod';
import { adminConfigSchema } from '../admin/config.ts';
import { topologyConfigSchema } from '../control/config.ts';
import { dnsConfigSchema } from '../dns/config.ts';
import { forwardConfigSchema } from '../forward/config.ts';
import { databaseConfigSchema, reaperConfigSchema, registrarConfigSchema, syncConfigSchema } from '../presence/config.ts';
import { registrationsConfigSchema } from '../registrations/config.ts';
import { routesConfigSchema } from '../routes/config.ts';

// The process's own section: main.ts creates the logger from it. Declared here rather than
// in log.ts, which every thread loads, so that the DNS and topology threads load no zod.
const logConfigSchema = z.strictObject({
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
    .default('info')
    .describe('Least severe level logged; `silent` logs nothing.'),
})
  .prefault({})
  .describe("The daemon's log: JSON lines on stdout.");

export const configSchema = z.strictObject({
  dns: dnsConfigSchema,
  topology: topologyConfigSchema,
  database: databaseConfigSchema,
  sync: syncConfigSchema,
  registrar: registrarConfigSchema,
  reaper: reaperConfigSchema,
  registrations: registrationsConfigSchema,
  forward: forwardConfigSchema,
  routes: routesConfigSchema,
  admin: adminConfigSchema,
  log: logConfigSchema,
})
  // The presence modules follow the database: on where there is one (always boolean after parsing).
  .overwrite((config) => {
    const database = hasDatabase(config.database);
    const follow = <T extends { enabled?: boolean }>(section: T): T => ({ ...section, enabled: section.enabled ?? database });
    return { ...config, sync: follow(config.sync), registrar: follow(config.registrar), reaper: follow(config.reaper) };
  })
  .superRefine((config, ctx) => {
    if (config.sync.enabled && config.sync.nats_url !== undefined && !config.database.url && !config.sync.database_url) {
      ctx.addIssue({ code: 'custom', path: ['sync', 'nats_url'], message: 'the fan-out (sync.nats_url) follows a PostgreSQL server: set database.url (the embedded database serves one node, which needs no fan-out)' });
    }
    if (hasDatabase(config.database)) return;
    for (const section of PRESENCE_SECTIONS) {
      if (!config[section].enabled) continue;
      ctx.addIssue({ code: 'custom', path: [section, 'enabled'], message: `${section}.enabled is true, but there is no database: set database.url, or database.embedded: true` });
    }
  })
  .describe('presence-dns configuration: one YAML or JSON file; every key has a default.');

const PRESENCE_SECTIONS = ['sync', 'registrar', 'reaper'] as const;

function hasDatabase(database: { url?: string; embedded: boolean }): boolean {
  return Boolean(database.url) || database.embedded;
}

export type Config = z.infer<typeof configSchema>;
