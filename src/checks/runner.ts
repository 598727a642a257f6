// Runs the local health checks of this node's registrations and hands the registrar the
// registrations with `health` set from the results. It sits between the registration
// set and the registrar as a RegistrationSource of its own: it emits `change` when the
// set changes and when an instance's health changes — never for a result that changes
// nothing — so the database sees only changes, at most one per rise/fall run of results.
//
// Checks run in the main thread's event loop as asynchronous I/O (a socket, an HTTP
// request, a child process): a worker thread would cost an isolate (~18 MB RSS) for work
// that is almost all waiting. At most `concurrency` run at once; the others wait in a
// queue. DNS answers never wait for a check: they come from the topology image.
import { EventEmitter } from 'node:events';
import type { Counter, Gauge, Registry } from '../admin/metrics.ts';
import type { Clock, Timer } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { HealthCheck, Registration, RegistrationSource } from '../registrations/types.ts';
import { HEALTH_VALUES, type Health } from '../image/instance.ts';
import { probe, type ProbeResult } from './probes.ts';
import { CommandSpawner } from './spawner.ts';
import { combine, observe, UNCHECKED, type CheckState } from './state.ts';
import { errorMessage } from '../util/error-message.ts';

/** Checks in flight at once: enough to keep up with many slow checks, few enough to stay light. */
export const MAX_CONCURRENT_CHECKS = 4;
/** First runs are spread over at most this long, so a start or a reload does not fire every check at once. */
const FIRST_RUN_SPREAD_MS = 1000;

export interface HealthChecksOptions {
  source: RegistrationSource;
  clock: Clock;
  logger: Logger;
  metrics: Registry;
  concurrency?: number;
  /** For the first-run spread; tests pass `() => 0` to run every check at once. */
  random?: () => number;
}

/** One check's state, as /v1/status shows it. */
export interface CheckStatus {
  instance: string;
  name: string;
  kind: HealthCheck['kind'];
  health: Health;
  /** The last result's detail (status code, error, exit code, output); null before the first. */
  detail: string | null;
  /** Clock time of the last result, ms; null before the first. */
  lastRunAt: number | null;
}

interface ScheduledCheck {
  instance: string;
  check: HealthCheck;
  state: CheckState;
  timer: Timer | null;
  /** Dropped by a registration change: a run in flight is ignored when it ends. */
  removed: boolean;
  detail: string | null;
  lastRunAt: number | null;
}

/** The same check of the same instance keeps its state across a registration change. */
const checkKey = (instance: string, check: HealthCheck) => `${instance}\u0000${JSON.stringify(check)}`;

export class HealthChecks extends EventEmitter<{ change: [Registration[]] }> implements RegistrationSource {
  private readonly checks = new Map<string, ScheduledCheck>();
  private byInstance = new Map<string, ScheduledCheck[]>();
  private registrations: Registration[] = [];
  /** The health each registration with checks gives, for the time before their results. */
  private registered = new Map<string, Health>();
  private current: Registration[] = [];
  private readonly queue: ScheduledCheck[] = [];
  private inFlight = 0;
  private idle: Array<() => void> = [];
  private readonly abort = new AbortController();
  private readonly spawner = new CommandSpawner();
  private started = false;
  private readonly concurrency: number;
  private readonly runs: Counter;
  private readonly healthChanges: Counter;
  private readonly states: Gauge;
  private readonly onChange = (registrations: Registration[]) => this.reconcile(registrations);

  constructor(private readonly options: HealthChecksOptions) {
    super();
    this.concurrency = options.concurrency ?? MAX_CONCURRENT_CHECKS;
    const { metrics } = options;
    this.states = metrics.gauge('presence_dns_checks', 'Local health checks by state (running, failing, unchecked).', { labelNames: ['state'] });
    this.runs = metrics.counter('presence_dns_check_runs_total', 'Local health check runs by kind and result (passed, failed).', { labelNames: ['kind', 'result'] });
    this.healthChanges = metrics.counter('presence_dns_check_health_changes_total', 'Instance health changes measured by local checks and handed to the registrar (each one database write).');
    metrics.gauge('presence_dns_check_queue', 'Checks due but waiting for one of the concurrent slots.', { collect: () => this.queue.length });
  }

  start(): void {
    this.started = true;
    this.options.source.on('change', this.onChange);
    this.reconcile(this.options.source.list());
  }

  /** Cancels the timers, kills the runs in flight and waits for them to end. */
  async stop(): Promise<void> {
    this.started = false;
    this.options.source.off('change', this.onChange);
    for (const scheduled of this.checks.values()) scheduled.timer?.cancel();
    this.queue.length = 0;
    this.abort.abort();
    await this.settled();
    this.spawner.stop();
  }

  /** The registrations, with the health their checks measured; ordered as the source orders them. */
  list(): Registration[] {
    return [...this.current];
  }

  status(): CheckStatus[] {
    return [...this.checks.values()].map((s) => ({
      instance: s.instance, name: s.check.name, kind: s.check.kind, health: s.state.health, detail: s.detail, lastRunAt: s.lastRunAt,
    }));
  }

  /** Resolves when no check is running or waiting for a slot (timers for later runs may be pending). */
  settled(): Promise<void> {
    if (this.inFlight === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private reconcile(registrations: Registration[]): void {
    if (!this.started) return;
    const wanted = new Map<string, ScheduledCheck>();
    const byInstance = new Map<string, ScheduledCheck[]>();
    for (const registration of registrations) {
      if (registration.checks.length === 0) continue;
      const own = registration.checks.map((check) => {
        const key = checkKey(registration.id, check);
        const scheduled = wanted.get(key) ?? this.checks.get(key) ?? this.add(registration.id, check);
        wanted.set(key, scheduled);
        return scheduled;
      });
      byInstance.set(registration.id, own);
    }
    for (const [key, scheduled] of this.checks) {
      if (wanted.has(key)) continue;
      scheduled.removed = true;
      scheduled.timer?.cancel();
      const queued = this.queue.indexOf(scheduled);
      if (queued >= 0) this.queue.splice(queued, 1);
      this.checks.delete(key);
    }
    for (const [key, scheduled] of wanted) this.checks.set(key, scheduled);
    this.byInstance = byInstance;
    this.registrations = registrations;
    this.registered = new Map(registrations.filter((r) => r.checks.length).map((r) => [r.id, r.health]));
    this.countStates();
    this.publish();
  }

  private add(instance: string, check: HealthCheck): ScheduledCheck {
    const scheduled: ScheduledCheck = { instance, check, state: UNCHECKED, timer: null, removed: false, detail: null, lastRunAt: null };
    const spread = Math.min(check.intervalMs, FIRST_RUN_SPREAD_MS);
    this.schedule(scheduled, (this.options.random ?? Math.random)() * spread);
    return scheduled;
  }

  private schedule(scheduled: ScheduledCheck, delayMs: number): void {
    scheduled.timer = this.options.clock.after(delayMs, () => {
      scheduled.timer = null;
      if (scheduled.removed || !this.started) return;
      this.queue.push(scheduled);
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.concurrency) {
      const next = this.queue.shift();
      if (next === undefined) break;
      this.run(next);
    }
    if (this.inFlight === 0 && this.queue.length === 0) {
      const waiting = this.idle;
      this.idle = [];
      for (const resolve of waiting) resolve();
    }
  }

  private run(scheduled: ScheduledCheck): void {
    this.inFlight++;
    const done = (result: ProbeResult) => {
      this.inFlight--;
      if (!scheduled.removed && this.started) {
        this.record(scheduled, result);
        // The next run counts from the end of this one: a check never overlaps itself.
        this.schedule(scheduled, scheduled.check.intervalMs);
      }
      this.pump();
    };
    probe(scheduled.check, this.options.clock, this.abort.signal, this.spawner).then(done, (err: unknown) => done({ passed: false, detail: errorMessage(err) }));
  }

  private record(scheduled: ScheduledCheck, result: ProbeResult): void {
    const { logger, clock } = this.options;
    this.runs.inc({ kind: scheduled.check.kind, result: result.passed ? 'passed' : 'failed' });
    const instanceBefore = this.instanceHealth(scheduled.instance);
    const before = scheduled.state.health;
    scheduled.state = observe(scheduled.state, result.passed, scheduled.check);
    scheduled.detail = result.detail;
    scheduled.lastRunAt = clock.now();
    if (scheduled.state.health === before) return;
    this.countStates();
    const fields = { instance: scheduled.instance, check: scheduled.check.name, detail: result.detail, from: before, to: scheduled.state.health };
    if (scheduled.state.health === 'failing') logger.warn(fields, 'health check failing');
    else logger.info(fields, 'health check state changed');
    if (this.instanceHealth(scheduled.instance) === instanceBefore) return;
    this.healthChanges.inc();
    this.publish();
  }

  /** The checks' verdict; until they have one, the health the registration gives. */
  private instanceHealth(instance: string): Health {
    const measured = combine((this.byInstance.get(instance) ?? []).map((s) => s.state.health));
    return measured === 'unchecked' ? this.registered.get(instance) ?? 'unchecked' : measured;
  }

  private countStates(): void {
    const counts = new Map<Health, number>(HEALTH_VALUES.map((h) => [h, 0]));
    for (const scheduled of this.checks.values()) counts.set(scheduled.state.health, (counts.get(scheduled.state.health) ?? 0) + 1);
    for (const [state, n] of counts) this.states.set({ state }, n);
  }

  /** Rebuilds the list with measured health and hands it on. */
  private publish(): void {
    this.current = this.registrations.map((r) => (r.checks.length ? { ...r, health: this.instanceHealth(r.id) } : r));
    try {
      this.emit('change', [...this.current]);
    } catch (err) {
      this.options.logger.error({ err: (err as Error).message }, 'a registration change listener failed');
    }
  }
}
