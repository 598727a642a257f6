// The node-local resolver: a NextHandler that answers names outside the served domains
// from the cache or the upstreams, serving stale answers (RFC 8767) when the upstreams
// fail or are slow. Decisions live in cache.ts and upstreams.ts; sockets in transport.ts.
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { FSWatcher } from 'chokidar';
import type { Registry } from '../admin/metrics.ts';
import type { Client, NextAnswer, NextHandler } from '../dns/handler.ts';
import type { ListenAddress } from '../dns/server.ts';
import { decodeQuery, EdeCode, edeOption, Rcode, type DecodedQuery, type EdnsOption } from '../codec/index.ts';
import type { Logger } from '../log.ts';
import { backgroundFailed, inBackground } from '../util/background.ts';
import { watchPaths } from '../util/watch.ts';
import { AllowList, defaultAllow } from './allow.ts';
import { ForwardCache, type CacheEntry, type Lookup } from './cache.ts';
import type { ForwardConfig } from './config.ts';
import { systemClock, type Clock } from '../clock.ts';
import { buildUpstreamQuery, renderReply, type StoredMessage } from './message.ts';
import { UpstreamClient } from './transport.ts';
import {
  orderUpstreams, parseUpstream, resolvConfUpstreams, Upstream,
  type HealthOptions, type UpstreamAddress, type UpstreamHooks,
} from './upstreams.ts';

export interface ForwarderOptions {
  config: ForwardConfig;
  /** The daemon's own listen addresses: excluded from resolv.conf, and the default allow list's networks. */
  listen: ListenAddress[];
  maxUdpSize: number;
  metrics: Registry;
  logger: Logger;
  clock?: Clock;
}

type FreshLookup = Extract<Lookup, { state: 'fresh' }>;

type Outcome =
  | { ok: true; stored: StoredMessage; entry: CacheEntry | null }
  | { ok: false; reason: string };

/** Distinct questions waiting on upstreams at once; beyond it, new ones fail fast instead of piling up. */
const MAX_IN_FLIGHT = 2048;
const MAX_PROBE_MS = 30_000;
/** `. IN NS`: what the health probe asks (any reply at all means the upstream is alive). */
const PROBE_QUESTION = Buffer.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1]);

const STALE_OPTION = edeOption(EdeCode.STALE_ANSWER);

function cacheKey(query: DecodedQuery): string {
  const q = query.question;
  return `${q.name.toLowerCase()}|${q.type}|${q.class}|${query.edns?.dnssecOk ? 1 : 0}|${query.checkingDisabled ? 1 : 0}`;
}

export class Forwarder implements NextHandler {
  private upstreams: Upstream[] = [];
  private readonly clients = new Map<string, UpstreamClient>();
  private readonly cache: ForwardCache | null;
  private readonly allow: AllowList;
  private readonly inflight = new Map<string, Promise<Outcome>>();
  private readonly clock: Clock;
  private readonly health: HealthOptions;
  private readonly hooks: UpstreamHooks;
  /** resolv.conf's watcher, from the moment it is asked for (a second SIGHUP meanwhile starts no other). */
  private watcher: Promise<FSWatcher> | null = null;
  private readonly hits;
  private readonly misses;
  private readonly servedStale;
  private readonly requests;
  private readonly healthFailures;

  constructor(private readonly options: ForwarderOptions) {
    const { config, metrics } = options;
    this.clock = options.clock ?? systemClock;
    this.allow = new AllowList(config.allow ?? defaultAllow(options.listen, networkInterfaces()));
    this.cache = config.cache.enabled
      ? new ForwardCache({
          maxEntries: config.cache.max_entries,
          maxBytes: config.cache.max_bytes,
          minTtl: config.cache.min_ttl,
          maxTtl: config.cache.max_ttl,
          negativeTtl: config.cache.negative_ttl,
          prefetch: config.cache.prefetch,
          serveStale: config.serve_stale.enabled,
          staleMaxAge: config.serve_stale.max_age,
          recheck: config.serve_stale.recheck,
        })
      : null;
    this.health = { maxFails: config.max_fails, probeMs: config.health_check * 1000, maxProbeMs: MAX_PROBE_MS };
    const hits = metrics.counter('coredns_cache_hits_total', 'Answers served fresh from the forwarder cache, by type (success, denial).', { labelNames: ['type'] });
    this.hits = { success: metrics.hotCounter(hits, { type: 'success' }), denial: metrics.hotCounter(hits, { type: 'denial' }) };
    this.misses = metrics.counter('coredns_cache_misses_total', 'Forwarded questions not answerable fresh from the cache.');
    this.servedStale = metrics.counter('coredns_cache_served_stale_total', 'Expired answers served because the upstreams failed or were slow (RFC 8767).');
    this.requests = metrics.counter('coredns_forward_requests_total', 'Queries sent to upstreams, by upstream.', { labelNames: ['to'] });
    this.healthFailures = metrics.counter('coredns_forward_healthcheck_failures_total', 'Failed health probes of upstreams marked down, by upstream.', { labelNames: ['to'] });
    const cache = this.cache;
    metrics.gauge('coredns_cache_entries', 'Entries in the forwarder cache.', { collect: () => cache?.size ?? 0 });
    const { logger } = options;
    this.hooks = {
      probe: (u) => this.probe(u),
      probeFailed: (u) => this.healthFailures.inc({ to: u.address.label }),
      changed: (u, down) => {
        if (down) logger.warn({ upstream: u.address.label, fails: u.fails }, 'upstream marked down; probing it');
        else logger.info({ upstream: u.address.label }, 'upstream answers again');
      },
    };
  }

  /** Loads the upstreams (config, else resolv.conf, watched). Throws a ForwardError on a bad upstream. */
  async start(): Promise<void> {
    const { config } = this.options;
    if (config.upstreams.length > 0) {
      this.setUpstreams(config.upstreams.map(parseUpstream));
      return;
    }
    await this.followResolvConf();
  }

  /**
   * SIGHUP: the configured upstreams as they are now, or — with none — resolv.conf read
   * again. Upstreams that stay keep their health and sockets; a question in flight to a
   * removed one is asked again of the others.
   */
  async reload(upstreams: string[]): Promise<void> {
    if (upstreams.length === 0) return this.followResolvConf();
    const watcher = this.watcher;
    this.watcher = null;
    await watcher?.then((w) => w.close());
    this.setUpstreams(upstreams.map(parseUpstream));
    this.options.logger.info({ upstreams: this.upstreamLabels }, 'upstreams reloaded');
  }

  private async followResolvConf(): Promise<void> {
    this.loadResolvConf();
    if (this.watcher) return;
    this.watcher = watchPaths(this.options.config.resolv_conf, {
      chokidar: { awaitWriteFinish: { stabilityThreshold: 50, pollInterval: 20 } },
      onChange: () => this.loadResolvConf(),
      onError: (err) => this.options.logger.error({ file: this.options.config.resolv_conf, err: err.message }, 'watching resolv.conf failed; its changes are missed until SIGHUP or restart'),
    });
    await this.watcher;
  }

  async stop(): Promise<void> {
    for (const u of this.upstreams) u.stop();
    for (const client of this.clients.values()) client.close();
    await this.watcher?.then((w) => w.close());
  }

  get recursionAvailable(): boolean {
    return this.upstreams.length > 0;
  }

  /** The upstreams in configured order, as `host:port`. */
  get upstreamLabels(): string[] {
    return this.upstreams.map((u) => u.address.label);
  }

  private loadResolvConf(): void {
    const file = this.options.config.resolv_conf;
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      this.options.logger.warn({ file, err: (err as Error).message }, 'cannot read resolv.conf; no upstreams until it can be read');
    }
    this.setUpstreams(resolvConfUpstreams(text, this.options.listen));
    this.options.logger.info({ file, upstreams: this.upstreamLabels }, 'upstreams from resolv.conf');
  }

  private setUpstreams(addresses: UpstreamAddress[]): void {
    const old = new Map(this.upstreams.map((u) => [u.address.label, u]));
    this.upstreams = addresses.map((a) => {
      const kept = old.get(a.label);
      old.delete(a.label);
      if (!kept) this.clients.set(a.label, new UpstreamClient(a, this.clock));
      return kept ?? new Upstream(a, this.health, this.clock, this.hooks);
    });
    for (const removed of old.values()) {
      removed.stop();
      this.clients.get(removed.address.label)?.close();
      this.clients.delete(removed.address.label);
    }
  }

  answerCached(query: DecodedQuery, packet: Buffer, client: Client): Buffer | null {
    if (this.upstreams.length === 0 || !this.allow.allows(client.address)) return null;
    const key = cacheKey(query);
    const looked = this.cache?.lookup(key, this.clock.now());
    return looked?.state === 'fresh' ? this.serveFresh(key, looked, query, packet, client) : null;
  }

  async handle(query: DecodedQuery, packet: Buffer, client: Client): Promise<NextAnswer | null> {
    if (this.upstreams.length === 0 || !this.allow.allows(client.address)) return null;
    const key = cacheKey(query);
    const looked = this.cache?.lookup(key, this.clock.now()) ?? { state: 'miss' as const };
    if (looked.state === 'fresh') return { packet: this.serveFresh(key, looked, query, packet, client) };
    this.misses.inc();
    if (looked.state === 'stale') {
      const outcome = looked.refresh ? await this.withinClientTimer(this.refresh(key, query, packet)) : null;
      if (outcome?.ok) return { packet: this.renderFresh(outcome, query, packet, client) };
      this.servedStale.inc();
      const staleTtl = this.options.config.serve_stale.ttl;
      return { packet: this.render(looked.entry.stored, query, packet, client, () => staleTtl, [STALE_OPTION]) };
    }
    const outcome = await this.refresh(key, query, packet);
    if (outcome.ok) return { packet: this.renderFresh(outcome, query, packet, client) };
    return {
      result: { rcode: Rcode.SERVFAIL, authoritative: false, answers: [], authority: [], additional: [] },
      ednsOptions: [edeOption(EdeCode.NO_REACHABLE_AUTHORITY, outcome.reason)],
    };
  }

  private serveFresh(key: string, looked: FreshLookup, query: DecodedQuery, packet: Buffer, client: Client): Buffer {
    (looked.entry.negative ? this.hits.denial : this.hits.success).inc();
    if (looked.prefetch && !this.inflight.has(key)) inBackground('forward_prefetch', this.refresh(key, query, packet));
    return this.render(looked.entry.stored, query, packet, client, looked.ttl);
  }

  /** The refresh's outcome, or null if it has not come back within the client timer (RFC 8767 §5). */
  private withinClientTimer(pending: Promise<Outcome>): Promise<Outcome | null> {
    return new Promise((resolve) => {
      const timer = this.clock.after(this.options.config.serve_stale.client_timeout * 1000, () => resolve(null));
      pending.then((outcome) => {
        timer.cancel();
        resolve(outcome);
      }, (err: unknown) => {
        // Reported here; the client gets the stale answer.
        backgroundFailed('forward_refresh', err);
        timer.cancel();
        resolve(null);
      });
    });
  }

  /** Asks the upstreams once for `key`, however many clients wait; stores the answer, or notes the failure. */
  private refresh(key: string, query: DecodedQuery, packet: Buffer): Promise<Outcome> {
    let pending = this.inflight.get(key);
    if (!pending && this.inflight.size >= MAX_IN_FLIGHT) {
      return Promise.resolve({ ok: false, reason: `${MAX_IN_FLIGHT} questions already waiting on upstreams` });
    }
    if (!pending) {
      pending = this.ask(query, packet).then((result): Outcome => {
        const now = this.clock.now();
        if (!result.ok) {
          this.cache?.refreshFailed(key, now);
          return result;
        }
        return { ok: true, stored: result.stored, entry: this.cache?.store(key, result.stored, now) ?? null };
      }).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  /**
   * Tries the upstreams in policy order until one gives an answer. A SERVFAIL or REFUSED
   * is not an answer (the next upstream may do better) but shows the upstream is alive.
   */
  private async ask(query: DecodedQuery, packet: Buffer): Promise<{ ok: true; stored: StoredMessage } | { ok: false; reason: string }> {
    const timeoutMs = this.options.config.timeout * 1000;
    let reason = 'no upstreams';
    for (const upstream of orderUpstreams(this.upstreams, this.options.config.policy)) {
      const client = this.clients.get(upstream.address.label);
      // Removed by a resolv.conf change while this question was in flight.
      if (!client) continue;
      const started = this.clock.now();
      this.requests.inc({ to: upstream.address.label });
      const result = await client.exchange(buildUpstreamQuery(randomInt(0x10000), packet, query), timeoutMs);
      if (!result.ok) {
        upstream.failed();
        reason = `${upstream.address.label}: ${result.reason}`;
        continue;
      }
      upstream.succeeded(this.clock.now() - started);
      const { rcode } = result.stored;
      if (rcode === Rcode.NOERROR || rcode === Rcode.NXDOMAIN) return { ok: true, stored: result.stored };
      reason = `${upstream.address.label}: answered rcode ${rcode}`;
    }
    return { ok: false, reason };
  }

  private async probe(upstream: Upstream): Promise<boolean> {
    const decoded = decodeQuery(PROBE_QUESTION);
    if (!decoded.ok) return false;
    const query = buildUpstreamQuery(randomInt(0x10000), PROBE_QUESTION, decoded.query);
    const client = this.clients.get(upstream.address.label);
    return client !== undefined && (await client.exchange(query, this.options.config.timeout * 1000)).ok;
  }

  private renderFresh(outcome: Extract<Outcome, { ok: true }>, query: DecodedQuery, packet: Buffer, client: Client): Buffer {
    const ttl = outcome.entry && this.cache ? this.cache.ttlAt(outcome.entry, this.clock.now()) : (t: number) => t;
    return this.render(outcome.stored, query, packet, client, ttl);
  }

  private render(stored: StoredMessage, query: DecodedQuery, packet: Buffer, client: Client, ttl: (t: number) => number, ednsOptions?: EdnsOption[]): Buffer {
    return renderReply(stored, { query, packet, ttl, transport: client.transport, maxUdpSize: this.options.maxUdpSize, ednsOptions });
  }
}
