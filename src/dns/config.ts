// The `dns` config section: where the daemon listens and how it shapes platform answers.
// Declared apart from the server so that the config schema loads no DNS code.
import { z } from 'zod';
import { filePath, port } from '../util/config-types.ts';

const ttl = z.number().int().min(0).max(86400);

export const dnsConfigSchema = z.strictObject({
  listen: z.array(z.strictObject({
    address: z.string().min(1).describe('IP address to listen on.'),
    port: port.describe('Port; 0 picks a free one.'),
  }))
    .min(1)
    .default([{ address: '127.0.0.1', port: 5353 }])
    .describe('UDP and TCP listen addresses (`port: 0` picks a free port).'),
  ttl: ttl.default(5).describe('TTL of platform answers, seconds.'),
  negative_ttl: ttl.optional().describe('TTL of negative answers (the SOA minimum), seconds; unset means `dns.ttl`.'),
  domains: z.array(z.string().min(1))
    .default(['bosh'])
    .describe('Domains served even when no record lives under them, so a name under them is never forwarded or refused just because its last instance went away.'),
  aliases_dir: filePath()
    .default('aliases.d')
    .describe('Directory of alias files (`*.yaml`, `*.yml`, `*.json`: alias name → list of target names).'),
  max_udp_size: z.number().int().min(512).max(65535)
    .default(1232)
    .describe('Largest UDP answer sent to EDNS clients, bytes (RFC 6891; 1232 avoids fragmentation).'),
  answer_cache_bytes: z.number().int().min(0)
    .default(128 * 1024 * 1024)
    .describe("Memory bound of the fast path's cache of encoded platform answers, bytes, one cache in shared memory for all DNS threads together; 0 turns the fast path off."),
  workers: z.union([z.number().int().min(1).max(64), z.literal('auto')])
    .default(1)
    .describe('Threads answering UDP: the main thread and `dns.workers` − 1 DNS worker threads sharing its ports (`SO_REUSEPORT`, Linux) and one topology image; `auto` = the cores available, at most 8. TCP stays on the main thread; without `SO_REUSEPORT` it logs so and answers with one thread.'),
})
  .prefault({})
  .describe('The DNS server: listen addresses, TTLs, the domains served, answer sizes and threads.');

export type DnsConfig = z.infer<typeof dnsConfigSchema>;
