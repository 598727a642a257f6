// The `forward` config section: the upstream recursors, their health, the allow list and
// the serve-stale cache. Upstreams and CIDRs are checked by the forwarder's own parsers,
// so a bad one is refused at load time with their reason. Imports only those pure
// parsers, not the forwarder (a DNS-only sidecar loads this file too).
import { z } from 'zod';
import { seconds } from '../util/config-types.ts';
import { allowedCidr } from './allow.ts';
import { ForwardError, parseUpstream } from './upstreams.ts';

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

const cacheSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('Caches upstream answers.'),
  max_entries: z.number().int().positive().default(10000).describe('Most answers kept (the least recently used go first, with a second chance).'),
  max_bytes: z.number().int().positive().default(16 * 1024 * 1024).describe('Most bytes of answers kept.'),
  min_ttl: z.number().int().min(0).default(0).describe("Lower clamp of every cached record's TTL, seconds."),
  max_ttl: z.number().int().positive().default(86400).describe("Upper clamp of every cached record's TTL, seconds."),
  negative_ttl: z.number().int().min(0).default(300).describe('Cap of NXDOMAIN and NODATA caching, seconds (their TTL is the SOA minimum, RFC 2308).'),
  prefetch: z.boolean().default(true).describe('Refreshes a name asked twice or more in the last 10 % of its TTL before it expires.'),
})
  .prefault({})
  .describe('The cache of upstream answers.');

const serveStaleSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('Answers from an expired entry when its refresh fails or is late (RFC 8767).'),
  max_age: seconds.default(86400).describe('Longest an expired entry is kept for stale answers, seconds (RFC 8767 suggests 1–3 days).'),
  ttl: z.number().int().positive().default(30).describe('TTL of a stale answer, seconds.'),
  client_timeout: seconds.default(1.8).describe('Client response timer: the client gets the stale answer if a refresh has not come back by then, seconds.'),
  recheck: seconds.default(30).describe('How long a name whose refresh failed is served stale without asking upstream again, seconds.'),
})
  .prefault({})
  .describe('Serve-stale: expired answers given when the upstreams fail (with Extended DNS Error 3, Stale Answer).');

export const forwardConfigSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('Forwards names the topology does not serve to upstream recursors.'),
  upstreams: z.array(parsedBy(parseUpstream))
    .default([])
    .describe('Upstream recursors, IP addresses with an optional port (`10.0.0.2`, `10.0.0.2:5390`, `[::1]:53`); empty means the `nameserver` lines of `forward.resolv_conf`.'),
  resolv_conf: z.string()
    .default('/etc/resolv.conf')
    .describe('The resolv.conf read (and watched) for upstreams when `forward.upstreams` is empty; an address the daemon itself answers on is left out.'),
  policy: z.enum(['sequential', 'random', 'fastest'])
    .default('sequential')
    .describe('Which upstream is asked first: in order, at random, or the one with the smallest smoothed round-trip time.'),
  timeout: seconds.default(2).describe('Time given to one upstream attempt, seconds.'),
  max_fails: z.number().int().positive().default(2).describe('Consecutive failures (timeouts, unreachable) that mark an upstream down.'),
  health_check: seconds.default(0.5).describe('First health probe of an upstream marked down, seconds; doubles per failed probe up to 30 s.'),
  allow: z.array(parsedBy(allowedCidr))
    .optional()
    .describe("CIDRs of the clients that may recurse (others get REFUSED for names that are not platform names); unset means loopback and the listen addresses' networks."),
  cache: cacheSchema,
  serve_stale: serveStaleSchema,
})
  .prefault({})
  .describe('Forwarding: the node-local resolver role, with upstream recursors and a serve-stale cache.');

export type ForwardConfig = z.infer<typeof forwardConfigSchema>;
