// routes: the cell-local route emitter (docs/routes.md). Publishes the HTTP routes of this
// node's registered instances to gorouter over NATS (`router.register` /
// `router.unregister`), from the local registrations, so routes stay up while the
// database is down. Owns the NATS connection; knows nothing of the database.
import type { Registry } from '../admin/index.ts';
import type { Logger } from '../log.ts';
import type { RegistrationSource } from '../registrations/types.ts';
import type { RoutesConfig } from './config.ts';
import { RouteEmitter } from './emitter.ts';
import { NatsBus } from './nats-bus.ts';
import { redactUrl } from '../util/redact.ts';

export { RouteEmitter, SUBJECT, type RouteEmitterOptions } from './emitter.ts';
export { COMPONENT_TAG, diffEndpoints, routeEndpoints, type RouteEndpoint, type RouteMessage } from './messages.ts';
export { NatsBus, type RouteBus } from './nats-bus.ts';
export { NatsConfigError, natsConnectionOptions, type NatsSettings } from '../util/nats-options.ts';

export interface RoutesStatus {
  natsConnected: boolean;
  /** Route endpoints (hostname × backend) this node announces. */
  endpoints: number;
  registerIntervalSeconds: number;
}

export interface RoutesModule {
  status(): RoutesStatus;
  /** Unregisters this node's routes, then closes the NATS connection. */
  stop(): Promise<void>;
}

/** Starts the emitter; NATS may be down, it is reached in the background. */
export function startRoutes(options: {
  config: RoutesConfig;
  registrations: RegistrationSource;
  logger: Logger;
  metrics: Registry;
}): RoutesModule {
  const { config, logger } = options;
  // The schema already refused what natsConnectionOptions would (see config.ts).
  const bus = new NatsBus({ ...config, nats_url: config.nats_url ?? '' }, logger);
  const emitter = new RouteEmitter({
    source: options.registrations,
    bus,
    logger,
    metrics: options.metrics,
    isolationSegment: config.isolation_segment ?? null,
  });
  options.metrics.gauge('presence_dns_routes_nats_connected', '1 while the route emitter is connected to NATS', { collect: () => (bus.connected ? 1 : 0) });
  emitter.start();
  bus.start();
  logger.info({ nats: redactUrl(config.nats_url ?? '') }, 'route emitter started');
  return {
    status: () => ({ natsConnected: bus.connected, endpoints: emitter.endpointCount, registerIntervalSeconds: emitter.registerIntervalSeconds }),
    async stop() {
      await emitter.stop();
      await bus.close();
    },
  };
}
