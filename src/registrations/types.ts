// The registration of one instance running on this node (docs/registrations.md): what an
// instances.d/*.yaml entry, a PUT /v1/instances/:id body, or the CLI describes, after
// validation and defaults. Consumed by the registrar (→ PostgreSQL presences) and the
// route emitter (→ gorouter over NATS).
import type { EventEmitter } from 'node:events';
import type { Health, Instance } from '../image/instance.ts';

export interface RouteRegistration {
  /** Lower-cased hostname. */
  hostname: string;
  /** Backend port; from the instance's `http` named port when the entry gave only a hostname. */
  port: number;
  tlsPort: number | null;
  /** Empty, or an https:// URL. */
  routeServiceUrl: string | null;
  protocol: 'http1' | 'http2' | null;
  serverCertDomainSan: string | null;
}

/** What a health check probes (docs/health-checks.md; the field names follow Consul's check definitions). */
export type CheckTarget =
  /** A GET of the URL; passes on `status`, or on any 2xx when it is null. */
  | { kind: 'http'; url: string; status: number | null }
  /** A TCP connect that succeeds. */
  | { kind: 'tcp'; host: string; port: number }
  /** A command (no shell) that exits 0; killed with its process group at the timeout. */
  | { kind: 'args'; args: string[] };

/** One local health check of an instance, with its defaults applied. */
export type HealthCheck = CheckTarget & {
  /** For logs and status; defaults to a description of the target, e.g. `tcp 127.0.0.1:8080`. */
  name: string;
  intervalMs: number;
  /** At most intervalMs: a check never overlaps its own next run. */
  timeoutMs: number;
  /** Consecutive passes that turn a failing check running. */
  rise: number;
  /** Consecutive failures that turn a running check failing. */
  fall: number;
};

/**
 * The instance's fields (src/image/fields.ts) but the cell, which the registrar sets, and
 * the family, which follows from the ip. `domain` defaults to "bosh"; a numeric id
 * (`numId`, `groupIds`, `azId`, `networkId`) left null is allocated by the database on
 * first use of the name.
 */
export interface Registration extends Omit<Instance, 'cellId' | 'family' | 'groupIds' | 'health'> {
  groupIds: number[] | null;
  /**
   * As registered. With checks, the value until they have results (default `unchecked`);
   * the registrar is handed the measured health instead (see src/checks).
   */
  health: Health;
  /** Local health checks; empty: `health` is what the registration says. */
  checks: HealthCheck[];
  routes: RouteRegistration[];
  /** Route-emitter extras (gorouter message fields). */
  app: string | null;
  isolationSegment: string | null;
  tags: Record<string, string>;
}

/** Where each registration came from, for error messages and for DELETE rules. */
export type RegistrationOrigin = { kind: 'file'; path: string } | { kind: 'api' };

/**
 * The live set of this node's registrations. Emits `change` with the full new list
 * whenever it changes (a file edited, an API call); consumers diff it themselves.
 */
export interface RegistrationSource extends EventEmitter<{ change: [Registration[]] }> {
  list(): Registration[];
}
