// The `admin` config section: where the admin HTTP API listens and its token. The API can
// register and delete instances, so it is never open to the network without a token.
import { z } from 'zod';
import { isLoopback } from '../util/ip.ts';
import { port } from '../util/config-types.ts';

export const adminConfigSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('The admin HTTP API (health, readiness, metrics, status, instances).'),
  address: z.string().default('127.0.0.1').describe('Address it listens on; one that is not loopback needs `admin.token`.'),
  port: port.default(8053).describe('Port it listens on.'),
  token: z.string().optional().describe('When set, every endpoint except `/health` wants `Authorization: Bearer <token>` (env: `PRESENCE_DNS_ADMIN_TOKEN`).'),
})
  .superRefine((admin, ctx) => {
    if (!admin.enabled || admin.token || isLoopback(admin.address) || admin.address === 'localhost') return;
    ctx.addIssue({ code: 'custom', path: ['address'], message: `${admin.address} is not a loopback address, so admin.token (or PRESENCE_DNS_ADMIN_TOKEN) must be set` });
  })
  .prefault({})
  .describe('The admin HTTP API.');

export type AdminConfig = z.infer<typeof adminConfigSchema>;
