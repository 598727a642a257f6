// The configuration schema: every key of the operator contract (DESIGN §8) with its
// default. Unknown keys are errors, so a typo is caught at start, not ignored.
import { z } from 'zod';
import { allowedCidr } from '../forward/allow.ts';
import { ForwardError, isLoopback, parseUpstream } from '../forward/upstreams.ts';
import { NatsConfigError, natsConnectionOptions } from '../routes/nats-options.ts';

const port = z.number().int().min(0).max(65535);
const listenAddress = z.strictObject({ address: z.string().min(1), port });
const seconds = z.number().positive();

/** A string `parse` accepts; when it does not, the parser's own reason is the message. */
function parsedBy(parse: (text: string) => unknown) {
  return z.string().superRefine((text, ctx) => {
    try {
      parse(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: err instanceof ForwardError ? err.reason : (err as Error).message });
    }
  });
}

export const configSchema = z.strictObject({
  dns: z.strictObject({
    listen: z.array(listenAddress).min(1).default([{ address: '127.0.0.1', port: 5353 }]),
    ttl: z.number().int().min(0).max(86400).default(5),
    /** TTL of negative answers (SOA minimum); defaults to dns.ttl. */
    negative_ttl: z.number().int().min(0).max(86400).optional(),
    /**
     * Domains served even when no record lives under them, so a name under them is never
     * forwarded or refused just because its last instance went away.
     */
    domains: z.array(z.string().min(1)).default(['bosh']),
    /** Directory of alias files (*.yaml|json: alias name → list of target names). */
    aliases_dir: z.string().default('aliases.d'),
    /** Largest UDP answer we send to EDNS clients (RFC 6891; 1232 avoids fragmentation). */
    max_udp_size: z.number().int().min(512).max(65535).default(1232),
    /** Memory bound of the fast path's cache of encoded platform answers, bytes, for all DNS threads together; 0 turns it off. */
    answer_cache_bytes: z.number().int().min(0).default(128 * 1024 * 1024),
    /**
     * Threads answering UDP: the main thread and dns.workers − 1 DNS worker threads sharing
     * its ports (SO_REUSEPORT) and one topology image; "auto" = the cores available, at most 8.
     */
    workers: z.union([z.number().int().min(1).max(64), z.literal('auto')]).default(1),
  }).prefault({}),
  topology: z.strictObject({
    file: z.string().default('topology.json'),
    /**
     * The largest topology file, journal or cached image read, bytes; a bigger one is
     * rejected (the last good topology stays). 600 k instances make a ~75 MB snapshot.
     */
    max_file_bytes: z.number().int().min(1024).default(512 * 1024 * 1024),
  }).prefault({}),
  database: z.strictObject({
    /** PostgreSQL URL; empty means the embedded database under `embedded_dir`, if `embedded`. */
    url: z.string().optional(),
    /**
     * With no url: true runs the embedded PGlite; false means there is no database, so the
     * presence modules (sync, registrar, reaper) are off unless switched on, which is then an
     * error (the container's default: a DNS sidecar fed a file).
     */
    embedded: z.boolean().default(true),
    embedded_dir: z.string().default('data/pglite'),
  }).prefault({}),
  sync: z.strictObject({
    /** Writes the topology file from the database; defaults to on exactly when there is a database. */
    enabled: z.boolean().optional(),
    interval: seconds.default(1),
  }).prefault({}),
  registrar: z.strictObject({
    /** Registers this node's instances (registrations.dir and the API) in the database; default as sync.enabled. */
    enabled: z.boolean().optional(),
    cell_id: z.string().optional(),
    address: z.string().optional(),
    ttl: seconds.default(15),
  }).prefault({}),
  reaper: z.strictObject({
    /** Default as sync.enabled. */
    enabled: z.boolean().optional(),
    max_expire_fraction: z.number().min(0).max(1).default(0.3),
    /** Multiple of the cells' TTL after which a tripped mass-expiry guard lets go. */
    guard_hold: z.number().positive().default(10),
  }).prefault({}),
  registrations: z.strictObject({
    dir: z.string().default('instances.d'),
  }).prefault({}),
  forward: z.strictObject({
    enabled: z.boolean().default(true),
    upstreams: z.array(parsedBy(parseUpstream)).default([]),
    resolv_conf: z.string().default('/etc/resolv.conf'),
    policy: z.enum(['sequential', 'random', 'fastest']).default('sequential'),
    timeout: seconds.default(2),
    /** Consecutive failures (timeouts, unreachable) that mark an upstream down. */
    max_fails: z.number().int().positive().default(2),
    /** First health probe of an upstream marked down, seconds; doubles per failed probe up to 30 s. */
    health_check: seconds.default(0.5),
    /** CIDRs allowed to recurse; default loopback and the listen addresses' networks. */
    allow: z.array(parsedBy(allowedCidr)).optional(),
    cache: z.strictObject({
      enabled: z.boolean().default(true),
      max_entries: z.number().int().positive().default(10000),
      max_bytes: z.number().int().positive().default(16 * 1024 * 1024),
      min_ttl: z.number().int().min(0).default(0),
      max_ttl: z.number().int().positive().default(86400),
      negative_ttl: z.number().int().min(0).default(300),
      prefetch: z.boolean().default(true),
    }).prefault({}),
    serve_stale: z.strictObject({
      enabled: z.boolean().default(true),
      /** Longest an expired entry is kept for stale answers, seconds (RFC 8767: 1-3 days). */
      max_age: seconds.default(86400),
      /** TTL of a stale answer, seconds. */
      ttl: z.number().int().positive().default(30),
      /** Client response timer: answer stale if a refresh has not come back by then, seconds. */
      client_timeout: seconds.default(1.8),
      /** How long a failed refresh is not retried, seconds. */
      recheck: seconds.default(30),
    }).prefault({}),
  }).prefault({}),
  routes: z.strictObject({
    /** The route emitter; defaults to on exactly when nats_url is set (always boolean after parsing). */
    enabled: z.boolean().optional(),
    /** One URL or a comma-separated list; `nats://user:password@host:4222` is accepted. */
    nats_url: z.string().min(1).optional(),
    nats_user: z.string().optional(),
    nats_password: z.string().optional(),
    nats_token: z.string().optional(),
    nats_tls: z.strictObject({
      ca_file: z.string().optional(),
      cert_file: z.string().optional(),
      key_file: z.string().optional(),
    }).optional(),
    isolation_segment: z.string().optional(),
  })
    .overwrite((routes) => ({ ...routes, enabled: routes.enabled ?? routes.nats_url !== undefined }))
    .superRefine((routes, ctx) => {
      if (!routes.enabled) return;
      if (routes.nats_url === undefined) {
        ctx.addIssue({ code: 'custom', path: ['nats_url'], message: 'routes.enabled is true, so the NATS URL of the gorouters is required' });
        return;
      }
      try {
        natsConnectionOptions({ ...routes, nats_url: routes.nats_url });
      } catch (err) {
        if (!(err instanceof NatsConfigError)) throw err;
        ctx.addIssue({ code: 'custom', path: [err.key], message: err.reason });
      }
    })
    .prefault({}),
  admin: z.strictObject({
    enabled: z.boolean().default(true),
    address: z.string().default('127.0.0.1'),
    port: port.default(8053),
    /** When set, every admin endpoint except /health wants `Authorization: Bearer <token>`. */
    token: z.string().optional(),
  })
    .superRefine((admin, ctx) => {
      // The API can register and delete instances: never open to the network without a token.
      if (!admin.enabled || admin.token || isLoopback(admin.address) || admin.address === 'localhost') return;
      ctx.addIssue({ code: 'custom', path: ['address'], message: `${admin.address} is not a loopback address, so admin.token (or PRESENCE_DNS_ADMIN_TOKEN) must be set` });
    })
    .prefault({}),
  log: z.strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  }).prefault({}),
})
  // The presence modules follow the database: on where there is one (always boolean after parsing).
  .overwrite((config) => {
    const database = hasDatabase(config.database);
    const follow = <T extends { enabled?: boolean }>(section: T): T => ({ ...section, enabled: section.enabled ?? database });
    return { ...config, sync: follow(config.sync), registrar: follow(config.registrar), reaper: follow(config.reaper) };
  })
  .superRefine((config, ctx) => {
    if (hasDatabase(config.database)) return;
    for (const section of PRESENCE_SECTIONS) {
      if (!config[section].enabled) continue;
      ctx.addIssue({ code: 'custom', path: [section, 'enabled'], message: `${section}.enabled is true, but there is no database: set database.url, or database.embedded: true` });
    }
  });

const PRESENCE_SECTIONS = ['sync', 'registrar', 'reaper'] as const;

function hasDatabase(database: { url?: string; embedded: boolean }): boolean {
  return Boolean(database.url) || database.embedded;
}

export type Config = z.infer<typeof configSchema>;
