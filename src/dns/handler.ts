// One DNS message in, one out: decode, answer platform names from the topology, hand
// other names to the next handler in the chain (the forwarder) or refuse them, encode,
// count. Transport-agnostic; the server feeds it bytes from UDP and TCP. The server asks
// `answerFast` first: platform answers already encoded are served from the fast path's
// cache, shared by every DNS thread, which this general path fills on a miss and
// topology changes invalidate.
import type { HotCounter, HotHistogram, Registry } from '../admin/metrics.ts';
import type { TopologyChange } from './follower.ts';
import { emptyView, type TopologyLookup } from '../image/view.ts';
import { AnswerCache, allocateAnswerCache } from './answer-cache.ts';
import { FastPath, type Built } from './fastpath.ts';
import { PlatformResolver } from './resolver.ts';
import {
  decodeQuery, encodeBareReply, encodeResponse, Rcode, RRType, rrTypeName,
  type DecodedQuery, type DnsResult, type EdnsOption, type Transport,
} from '../codec/index.ts';

export type { Transport } from '../codec/index.ts';

export interface Client {
  address: string;
  port: number;
  transport: Transport;
}

/** What a next handler (e.g. the forwarder) gives back: a result to encode, or finished bytes. */
export type NextAnswer = { result: DnsResult; ednsOptions?: EdnsOption[] } | { packet: Buffer };

/** A handler after the platform resolver: answers names outside the served domains. */
export interface NextHandler {
  readonly recursionAvailable: boolean;
  handle(query: DecodedQuery, packet: Buffer, client: Client): Promise<NextAnswer | null>;
  /** A finished reply when one is at hand without waiting (a fresh cache hit), else null. */
  answerCached?(query: DecodedQuery, packet: Buffer, client: Client): Buffer | null;
}

export interface DnsHandlerOptions {
  ttl: number;
  negativeTtl: number;
  maxUdpSize: number;
  metrics: Registry;
  currentIndex: () => TopologyLookup | null;
  /** Memory bound of the fast path's answer cache, bytes; 0 answers everything the general way. */
  answerCacheBytes?: number;
  /**
   * The answer cache the DNS threads share (allocateAnswerCache) and the log this thread
   * writes; without it, one of `answerCacheBytes` for this thread alone.
   */
  answerCache?: { buffer: SharedArrayBuffer; log: number };
  /** The main thread's topology change stamps, for a DNS worker thread starting from its state. */
  answerStamps?: Uint32Array;
}

interface BoundCounters {
  requests: HotCounter;
  responses: HotCounter;
  duration: HotHistogram;
}

const RCODE_NAMES = Object.fromEntries(Object.entries(Rcode).map(([k, v]) => [v, k]));
/** Answers names when no topology is loaded yet (upcheck still works; nothing else is ours). */
const EMPTY_INDEX = emptyView();

const KNOWN_TYPES = new Set<number>(Object.values(RRType));

/** Metric label of a query type: its name when known, else "other", so labels stay few (as CoreDNS does). */
function typeLabel(type: number): string {
  return KNOWN_TYPES.has(type) ? rrTypeName(type) : 'other';
}

export class DnsHandler {
  private readonly resolver: PlatformResolver;
  private readonly requests;
  private readonly responses;
  private readonly duration;
  private readonly malformed;
  private readonly fast: FastPath;
  next: NextHandler | null = null;
  /** The answer cache's buffer, for the DNS worker threads to share (null: the cache is off). */
  readonly answerCache: SharedArrayBuffer | null;
  /** Start time of the fast-path query being answered (a field: no closure per query). */
  private fastStarted = 0;
  private readonly fastCounters = new Map<number, BoundCounters>();

  constructor(private readonly options: DnsHandlerOptions) {
    this.resolver = new PlatformResolver({ ttl: options.ttl, negativeTtl: options.negativeTtl });
    const { metrics } = options;
    this.requests = metrics.counter('coredns_dns_requests_total', 'DNS requests received.', { labelNames: ['proto', 'type'] });
    this.responses = metrics.counter('coredns_dns_responses_total', 'DNS responses sent, by rcode.', { labelNames: ['rcode'] });
    this.duration = metrics.histogram('coredns_dns_request_duration_seconds', 'Time to answer a DNS request.', { labelNames: ['proto'] });
    this.malformed = metrics.counter('presence_dns_malformed_packets_total', 'Packets that were not a usable DNS query.');
    const cacheBytes = options.answerCacheBytes ?? 128 * 1024 * 1024;
    const shared = cacheBytes === 0 ? null : options.answerCache ?? { buffer: allocateAnswerCache(cacheBytes, 1), log: 0 };
    this.answerCache = shared?.buffer ?? null;
    this.fast = new FastPath({
      maxUdpSize: options.maxUdpSize,
      cache: shared && new AnswerCache(shared.buffer, shared.log),
      stamps: options.answerStamps,
      build: (packet, index, transport) => this.build(packet, index, transport),
      recursionAvailable: () => this.next?.recursionAvailable ?? false,
      served: (transport, type, rcode) => this.countFast(transport, type, rcode),
    });
    const cache = this.fast;
    metrics.counter('presence_dns_answer_cache_hits_total', 'Queries answered from the encoded-answer cache.', { total: () => cache.hits });
    metrics.counter('presence_dns_answer_cache_misses_total', 'Queries that encoded an answer for the cache.', { total: () => cache.misses });
  }

  /**
   * The reply from the cache of encoded platform answers, or null when the general path
   * (`handle`) must answer. Synchronous: no promise per query on the hot path.
   */
  answerFast(packet: Buffer, client: Client): Buffer | null {
    this.fastStarted = performance.now();
    const reply = this.fast.answer(packet, client.transport, this.options.currentIndex());
    if (reply !== null || !this.fast.foreign || !this.next?.answerCached) return reply;
    // Not ours: a forwarded answer still fresh in the next handler's cache needs no promise either.
    const decoded = decodeQuery(packet);
    if (!decoded.ok) return null;
    const cached = this.next.answerCached(decoded.query, packet, client);
    if (cached) this.countFast(client.transport, decoded.query.question.type, cached[3] & 0x0f);
    return cached;
  }

  /**
   * The topology in service changed (change number `stamp`, the same on every thread):
   * `replaced` re-encodes every cached answer; a delta only the answers the changed
   * instances can appear in.
   */
  topologyChanged(change: TopologyChange, stamp: number): void {
    this.fast.changed(change, stamp);
  }

  /** The fast path's change stamps, for a DNS worker thread that starts from this thread's state. */
  answerStamps(): Uint32Array {
    return this.fast.stampTable();
  }

  /** Encodes one platform answer for the fast path's cache, exactly as `answer` would. */
  private build(packet: Buffer, index: TopologyLookup, transport: Transport): Built {
    const decoded = decodeQuery(packet);
    if (!decoded.ok || decoded.query.opcode !== 0 || (decoded.query.edns && decoded.query.edns.version > 0)) return { kind: 'pass', tag: 0 };
    const { query } = decoded;
    const { result, tag } = this.resolver.resolve(index, query.question);
    if (!result) return { kind: 'pass', tag };
    const encoded = this.encode(packet, query, transport, result);
    return { kind: 'answer', packet: encoded, shuffled: result.answers.length > 1 || result.additional.length > 1, tag };
  }

  /** Counts a fast-path answer with label sets bound once per (transport, type, rcode). */
  private countFast(transport: Transport, type: number, rcode: number): void {
    const key = (KNOWN_TYPES.has(type) ? type : 0) * 64 + rcode * 2 + (transport === 'tcp' ? 1 : 0);
    let bound = this.fastCounters.get(key);
    if (bound === undefined) {
      const { metrics } = this.options;
      bound = {
        requests: metrics.hotCounter(this.requests, { proto: transport, type: typeLabel(type) }),
        responses: metrics.hotCounter(this.responses, { rcode: RCODE_NAMES[rcode] ?? String(rcode) }),
        duration: metrics.hotHistogram(this.duration, { proto: transport }),
      };
      this.fastCounters.set(key, bound);
    }
    bound.requests.inc();
    bound.responses.inc();
    bound.duration.observe((performance.now() - this.fastStarted) / 1000);
  }

  /** Returns the reply bytes, or null to drop the packet (not a query at all). */
  async handle(packet: Buffer, client: Client): Promise<Buffer | null> {
    const started = performance.now();
    const decoded = decodeQuery(packet);
    let reply: Buffer | null;
    if (!decoded.ok) {
      this.malformed.inc();
      reply = decoded.id === null ? null : encodeBareReply(decoded.id, decoded.opcode, decoded.recursionDesired, Rcode.FORMERR);
    } else {
      const { query } = decoded;
      this.requests.inc({ proto: client.transport, type: typeLabel(query.question.type) });
      reply = query.opcode !== 0
        ? encodeBareReply(query.id, query.opcode, query.recursionDesired, Rcode.NOTIMP)
        : await this.answer(query, packet, client);
    }
    if (reply) {
      this.responses.inc({ rcode: RCODE_NAMES[reply[3] & 0x0f] ?? String(reply[3] & 0x0f) });
      this.duration.observe({ proto: client.transport }, (performance.now() - started) / 1000);
    }
    return reply;
  }

  private encode(packet: Buffer, query: DecodedQuery, transport: Transport, result: DnsResult, ednsOptions?: EdnsOption[]): Buffer {
    return encodeResponse(packet, query, result, {
      transport, maxUdpSize: this.options.maxUdpSize, recursionAvailable: this.next?.recursionAvailable ?? false, ednsOptions,
    });
  }

  /**
   * The reply to a query that a DNS worker thread passes on (a name it does not serve, for
   * the forwarder here): answered as `handle` would, but not counted again.
   */
  async relay(packet: Buffer, client: Client): Promise<Buffer | null> {
    const decoded = decodeQuery(packet);
    return decoded.ok ? this.answer(decoded.query, packet, client) : null;
  }

  private async answer(query: DecodedQuery, packet: Buffer, client: Client): Promise<Buffer> {
    const encode = (result: DnsResult, ednsOptions?: EdnsOption[]) => this.encode(packet, query, client.transport, result, ednsOptions);
    if (query.edns && query.edns.version > 0) {
      return encode({ rcode: Rcode.BADVERS, authoritative: false, answers: [], authority: [], additional: [] });
    }
    const platform = this.resolver.resolve(this.options.currentIndex() ?? EMPTY_INDEX, query.question).result;
    if (platform) return encode(platform);
    const next = this.next ? await this.next.handle(query, packet, client) : null;
    if (next && 'packet' in next) return next.packet;
    if (next) return encode(next.result, next.ednsOptions);
    return encode({ rcode: Rcode.REFUSED, authoritative: false, answers: [], authority: [], additional: [] });
  }
}
