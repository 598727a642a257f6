// The gorouter message set: which `router.register` bodies this node's registrations
// stand for, and what changed between two such sets. Pure: no NATS, no clock.
import type { Registration } from '../registrations/types.ts';

/** The JSON body of `router.register` / `router.unregister` (gorouter's RegistryMessage). */
export interface RouteMessage {
  host: string;
  port: number;
  /** Exactly one hostname per message, so one lost message costs one route. */
  uris: [string];
  tls_port?: number;
  protocol?: 'http1' | 'http2';
  app?: string;
  private_instance_id: string;
  private_instance_index?: string;
  server_cert_domain_san?: string;
  isolation_segment?: string;
  availability_zone?: string;
  route_service_url?: string;
  tags: Record<string, string>;
  /** Only on an endpoint's first register; see withUpdatedAt. */
  endpoint_updated_at_ns?: number;
}

/** One (instance, hostname) route as the emitter tracks it. */
export interface RouteEndpoint {
  /** Identity in gorouter's pool: a different key is a different backend. */
  key: string;
  body: RouteMessage;
  /** `body` serialised once: every interval re-sends it, 10,000 times per cell. */
  json: string;
}

export interface RouteDefaults {
  /** routes.isolation_segment: used when a registration names none. */
  isolationSegment: string | null;
}

export const COMPONENT_TAG = 'route-emitter';

function endpointKey(body: RouteMessage): string {
  return `${body.uris[0]} ${body.host}:${body.port} ${body.private_instance_id}`;
}

/**
 * Every route of every registration that should take traffic, keyed by endpoint.
 * A `failing` instance gets no routes: gorouter would send it requests it cannot serve.
 */
export function routeEndpoints(registrations: readonly Registration[], defaults: RouteDefaults): Map<string, RouteEndpoint> {
  const endpoints = new Map<string, RouteEndpoint>();
  for (const reg of registrations) {
    if (reg.health === 'failing') continue;
    const isolationSegment = reg.isolationSegment ?? defaults.isolationSegment;
    for (const route of reg.routes) {
      const body: RouteMessage = {
        host: reg.ip,
        port: route.port,
        uris: [route.hostname],
        ...(route.tlsPort !== null && { tls_port: route.tlsPort }),
        ...(route.protocol !== null && { protocol: route.protocol }),
        ...(reg.app !== null && { app: reg.app }),
        private_instance_id: reg.id,
        ...(reg.index !== null && { private_instance_index: String(reg.index) }),
        ...(route.serverCertDomainSan !== null && { server_cert_domain_san: route.serverCertDomainSan }),
        ...(isolationSegment && { isolation_segment: isolationSegment }),
        ...(reg.az !== null && { availability_zone: reg.az }),
        ...(route.routeServiceUrl && { route_service_url: route.routeServiceUrl }),
        tags: { ...reg.tags, component: COMPONENT_TAG },
      };
      const key = endpointKey(body);
      endpoints.set(key, { key, body, json: JSON.stringify(body) });
    }
  }
  return endpoints;
}

export interface RouteDiff {
  /** New endpoints, and endpoints whose fields changed (gorouter updates them in place). */
  register: RouteEndpoint[];
  /** Endpoints that are gone, with the body they were registered with. */
  unregister: RouteEndpoint[];
}

export function diffEndpoints(before: ReadonlyMap<string, RouteEndpoint>, after: ReadonlyMap<string, RouteEndpoint>): RouteDiff {
  const register: RouteEndpoint[] = [];
  const unregister: RouteEndpoint[] = [];
  for (const [key, endpoint] of after) {
    if (before.get(key)?.json !== endpoint.json) register.push(endpoint);
  }
  for (const [key, endpoint] of before) {
    if (!after.has(key)) unregister.push(endpoint);
  }
  return { register, unregister };
}

/** The body of an endpoint's first register: gorouter orders updates by this timestamp. */
export function withUpdatedAt(endpoint: RouteEndpoint, updatedAtNs: bigint): string {
  // Spliced as text: nanoseconds since the epoch exceed a double's exact integers.
  return `${endpoint.json.slice(0, -1)},"endpoint_updated_at_ns":${updatedAtNs}}`;
}
