// The `routes` config section: the route emitter's NATS connection. On exactly when
// nats_url is set (unless switched off), and the NATS settings are checked at load time by
// the same code that builds the connection options, so `validate-config` reports them
// rather than the first connect. Imports no `nats`: a DNS-only sidecar loads this file too.
import { z } from 'zod';
import { filePath } from '../util/config-types.ts';
import { NatsConfigError, natsConnectionOptions } from '../util/nats-options.ts';

export const routesConfigSchema = z.strictObject({
  enabled: z.boolean().optional().describe('The route emitter; unset means on exactly when `routes.nats_url` is set. `false` keeps the URL and switches the emitter off; `true` without a URL is an error.'),
  nats_url: z.string().min(1).optional().describe("The gorouters' NATS: `nats://host:4222`, or a comma-separated list of servers; `nats://user:password@host:4222` is accepted, `tls://host:4224` requires TLS."),
  nats_user: z.string().optional().describe("NATS user; takes precedence over the URL's."),
  nats_password: z.string().optional().describe("NATS password; takes precedence over the URL's."),
  nats_token: z.string().optional().describe('NATS token authentication; cannot be combined with a user.'),
  nats_tls: z.strictObject({
    ca_file: filePath().optional().describe('CA bundle that verifies the NATS servers (unset: the system CAs); setting it turns TLS on.'),
    cert_file: filePath().optional().describe('Client certificate, for servers that verify clients; give both or neither with `key_file`.'),
    key_file: filePath().optional().describe("The client certificate's key."),
  })
    .optional()
    .describe('TLS to NATS.'),
  isolation_segment: z.string().optional().describe('`isolation_segment` of the registrations that do not name one.'),
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
  .prefault({})
  .describe("The route emitter: this node's HTTP routes sent to Cloud Foundry's gorouter over NATS.");

export type RoutesConfig = z.infer<typeof routesConfigSchema>;
