// The route emitter's behaviour (docs/routes.md): what to publish and when. It keeps the
// current endpoint set, publishes registers on change and on every interval, follows
// gorouter's router.start / greet parameters, and re-sends unregisters a bounded number
// of times. Time and randomness are injected, NATS sits behind RouteBus.
import type { Registry } from '../admin/index.ts';
import type { Logger } from '../log.ts';
import type { Registration, RegistrationSource } from '../registrations/types.ts';
// The forwarder's Clock: one timer abstraction for the whole daemon.
import { systemClock, type Clock, type Timer } from '../clock.ts';
import { diffEndpoints, routeEndpoints, withUpdatedAt, type RouteEndpoint } from './messages.ts';
import type { RouteBus } from './nats-bus.ts';
import {
  DEFAULT_REGISTER_INTERVAL_S, GreetingError, intervalOutlivesPrune, parseRouterGreeting, startJitterMs, type RouterGreeting,
} from './schedule.ts';
import { PendingUnregisters } from './unregisters.ts';

export const SUBJECT = {
  register: 'router.register',
  unregister: 'router.unregister',
  greet: 'router.greet',
  start: 'router.start',
} as const;

const LOGGED_KEYS = 20;

export interface RouteEmitterOptions {
  source: RegistrationSource;
  bus: RouteBus;
  logger: Logger;
  metrics: Registry;
  /** routes.isolation_segment, for registrations that name none. */
  isolationSegment?: string | null;
  clock?: Clock;
  /** Wall-clock milliseconds since the epoch, for `endpoint_updated_at_ns`. */
  wallClockMs?: () => number;
  random?: () => number;
  /** `router.greet` is repeated this often until a router answers. */
  greetIntervalMs?: number;
  /** Extra sends of an unregister, one per interval, after the immediate one. */
  unregisterResends?: number;
  /** At exit, how long to wait for the final unregisters to reach NATS. */
  stopFlushMs?: number;
}

function routeMetrics(m: Registry) {
  return {
    routes: m.gauge('presence_dns_routes_total', 'HTTP routes (instance, hostname) this node emits to gorouter'),
    registered: m.counter('presence_dns_routes_registered_total', 'Routes registered because they appeared or changed'),
    unregistered: m.counter('presence_dns_routes_unregistered_total', 'Routes unregistered because their instance, hostname or health went away'),
    emitted: m.counter('presence_dns_route_messages_emitted_total', 'NATS messages published to gorouter, by subject', { labelNames: ['subject'] }),
    duration: m.histogram('presence_dns_route_emit_duration_seconds', 'Time to publish the full route set once'),
  };
}

export class RouteEmitter {
  private endpoints = new Map<string, RouteEndpoint>();
  /** Endpoints whose first register has not reached NATS yet → their update time (ns). */
  private readonly unannounced = new Map<string, bigint>();
  private readonly pending: PendingUnregisters;
  private intervalSeconds = DEFAULT_REGISTER_INTERVAL_S;
  private pruneThresholdSeconds: number | null = null;
  private routerAnswered = false;
  private ticker: Timer | null = null;
  private jitter: Timer | null = null;
  private greeter: Timer | null = null;
  private greetInbox = '';
  /** After stop(): the routes are unregistered, so nothing may register them again. */
  private stopped = false;
  private readonly clock: Clock;
  private readonly wallClockMs: () => number;
  private readonly random: () => number;
  private readonly metrics: ReturnType<typeof routeMetrics>;

  constructor(private readonly options: RouteEmitterOptions) {
    this.clock = options.clock ?? systemClock;
    this.wallClockMs = options.wallClockMs ?? Date.now;
    this.random = options.random ?? Math.random;
    this.pending = new PendingUnregisters(options.unregisterResends ?? 2);
    this.metrics = routeMetrics(options.metrics);
  }

  /** The interval gorouter asked for (or the default until one answers), in seconds. */
  /** Route endpoints (hostname × backend) this node announces. */
  get endpointCount(): number {
    return this.endpoints.size;
  }

  get registerIntervalSeconds(): number {
    return this.intervalSeconds;
  }

  start(): void {
    const { bus, source } = this.options;
    this.greetInbox = bus.inbox();
    bus.subscribe(SUBJECT.start, this.onRouterStart);
    bus.subscribe(this.greetInbox, this.onGreetReply);
    bus.on('connected', this.onConnected);
    source.on('change', this.onChange);
    this.onChange(source.list());
    this.scheduleTick();
    this.greet();
  }

  /** Unregisters every route of this node (the node is going away) and stops. */
  async stop(): Promise<void> {
    const { bus, source, logger } = this.options;
    this.stopped = true;
    for (const timer of [this.ticker, this.jitter, this.greeter]) timer?.cancel();
    source.off('change', this.onChange);
    bus.off('connected', this.onConnected);
    const goodbye = [...this.endpoints.values(), ...this.pending.all()];
    const sent = this.publishAll(SUBJECT.unregister, goodbye.map((e) => e.json));
    this.metrics.unregistered.inc(this.endpoints.size);
    this.endpoints = new Map();
    this.metrics.routes.set(0);
    await bus.flush(this.options.stopFlushMs ?? 2000);
    logger.info({ unregistered: sent, of: goodbye.length }, 'route emitter stopped; routes unregistered');
  }

  private readonly onChange = (registrations: Registration[]): void => {
    const next = routeEndpoints(registrations, { isolationSegment: this.options.isolationSegment ?? null });
    const diff = diffEndpoints(this.endpoints, next);
    this.endpoints = next;
    this.metrics.routes.set(next.size);
    if (diff.register.length === 0 && diff.unregister.length === 0) return;
    const updatedAtNs = BigInt(Math.trunc(this.wallClockMs())) * 1_000_000n;
    for (const endpoint of diff.unregister) {
      this.unannounced.delete(endpoint.key);
      this.pending.add(endpoint);
    }
    for (const endpoint of diff.register) {
      this.pending.cancel(endpoint.key);
      this.unannounced.set(endpoint.key, updatedAtNs);
    }
    this.publishAll(SUBJECT.unregister, diff.unregister.map((e) => e.json));
    this.publishRegisters(diff.register);
    this.metrics.registered.inc(diff.register.length);
    this.metrics.unregistered.inc(diff.unregister.length);
    // Name the routes when a few changed; a node's first load can be thousands.
    const named = (endpoints: RouteEndpoint[]) => (endpoints.length <= LOGGED_KEYS ? endpoints.map((e) => e.key) : endpoints.length);
    this.options.logger.info({ registered: named(diff.register), unregistered: named(diff.unregister), routes: next.size }, 'routes changed');
  };

  /** A (re)connection: gorouter may have missed anything sent while we were away. */
  private readonly onConnected = (): void => {
    this.emitAll(this.pending.all());
    // A greet sent while NATS was unreachable was lost: ask now rather than next second.
    if (!this.routerAnswered) {
      this.greeter?.cancel();
      this.greet();
    }
  };

  private readonly onRouterStart = (text: string): void => {
    const greeting = this.stopped ? null : this.parseGreeting(text, SUBJECT.start);
    if (!greeting) return;
    this.routerAnswered = true;
    this.greeter?.cancel();
    this.applyGreeting(greeting);
    this.ticker?.cancel();
    this.jitter?.cancel();
    const delay = startJitterMs(this.intervalSeconds, this.random);
    this.options.logger.info({ router: greeting.id, intervalSeconds: this.intervalSeconds, delayMs: delay }, 'router.start: re-publishing all routes');
    this.jitter = this.clock.after(delay, () => {
      this.jitter = null;
      this.emitAll(this.pending.due());
      this.scheduleTick();
    });
  };

  private readonly onGreetReply = (text: string): void => {
    const greeting = this.stopped ? null : this.parseGreeting(text, 'router.greet reply');
    if (!greeting) return;
    this.routerAnswered = true;
    this.greeter?.cancel();
    const before = this.intervalSeconds;
    this.applyGreeting(greeting);
    this.options.logger.info({ router: greeting.id, intervalSeconds: this.intervalSeconds }, 'a router answered router.greet');
    if (this.intervalSeconds !== before && !this.jitter) this.scheduleTick();
  };

  private parseGreeting(text: string, what: string): RouterGreeting | null {
    try {
      return parseRouterGreeting(text);
    } catch (err) {
      if (!(err instanceof GreetingError)) throw err;
      this.options.logger.warn({ code: err.code, err: err.message }, `ignoring an invalid ${what}`);
      return null;
    }
  }

  private applyGreeting(greeting: RouterGreeting): void {
    if (greeting.pruneThresholdSeconds !== null) this.pruneThresholdSeconds = greeting.pruneThresholdSeconds;
    if (greeting.intervalSeconds !== null) this.intervalSeconds = greeting.intervalSeconds;
    if (intervalOutlivesPrune(this.intervalSeconds, this.pruneThresholdSeconds)) {
      this.options.logger.warn(
        { intervalSeconds: this.intervalSeconds, pruneThresholdSeconds: this.pruneThresholdSeconds },
        'gorouter prunes routes before they are re-registered; routes will flap',
      );
    }
  }

  private greet(): void {
    if (this.routerAnswered) return;
    if (this.options.bus.publish(SUBJECT.greet, '', this.greetInbox)) this.metrics.emitted.inc({ subject: SUBJECT.greet });
    this.greeter = this.clock.after(this.options.greetIntervalMs ?? 1000, () => this.greet());
  }

  private scheduleTick(): void {
    this.ticker?.cancel();
    this.ticker = this.clock.after(this.intervalSeconds * 1000, () => {
      this.emitAll(this.pending.due());
      this.scheduleTick();
    });
  }

  /** Re-publishes every route, plus the given unregisters. */
  private emitAll(unregisters: RouteEndpoint[]): void {
    const started = performance.now();
    const registers = this.publishRegisters([...this.endpoints.values()]);
    const unregistered = this.publishAll(SUBJECT.unregister, unregisters.map((e) => e.json));
    this.metrics.duration.observe((performance.now() - started) / 1000);
    this.options.logger.debug(
      { registers, of: this.endpoints.size, unregisters: unregistered, connected: this.options.bus.connected },
      'published all routes',
    );
  }

  /** Registers; an endpoint's first one that reaches NATS carries its update time. */
  private publishRegisters(endpoints: RouteEndpoint[]): number {
    const { bus } = this.options;
    let sent = 0;
    for (const endpoint of endpoints) {
      const updatedAtNs = this.unannounced.get(endpoint.key);
      const body = updatedAtNs === undefined ? endpoint.json : withUpdatedAt(endpoint, updatedAtNs);
      if (!bus.publish(SUBJECT.register, body)) continue;
      sent++;
      if (updatedAtNs !== undefined) this.unannounced.delete(endpoint.key);
    }
    if (sent) this.metrics.emitted.inc({ subject: SUBJECT.register }, sent);
    return sent;
  }

  private publishAll(subject: string, bodies: string[]): number {
    let sent = 0;
    for (const body of bodies) if (this.options.bus.publish(subject, body)) sent++;
    if (sent) this.metrics.emitted.inc({ subject }, sent);
    return sent;
  }
}
