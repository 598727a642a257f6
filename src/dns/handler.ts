// One DNS message in, one out: the handler chain — the fast path (platform answers kept
// in the answer cache every DNS thread shares, or encoded on a miss), the resolver for
// what the fast path does not keep, the next handler (the forwarder) for names that are
// not ours, REFUSED — and its metrics. Transport-agnostic; the server feeds it bytes from
// UDP and TCP. A packet is decoded once at most, and only when the answer cache cannot
// serve it; a reply at hand is returned at once, with no promise per query.
import type { HotCounter, HotHistogram, Registry } from '../admin/metrics.ts';
import type { TopologyChange } from './follower.ts';
import { emptyView, type TopologyLookup } from '../image/view.ts';
import { AnswerCache, allocateAnswerCache } from './answer-cache.ts';
import { FastPath } from './fastpath.ts';
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

/** A reply now, a reply later, or null: drop the packet (not a query at all). */
export type Reply = Buffer | Promise<Buffer | null> | null;

export interface DnsHandlerOptions {
  ttl: number;
  negativeTtl: number;
  maxUdpSize: number;
  metrics: Registry;
  currentIndex: () => TopologyLookup | null;
  /** Memory bound of the fast path's answer cache, bytes; 0 keeps no answers (each is encoded anew). */
  answerCacheBytes?: number;
  /**
   * The answer cache the DNS threads share (allocateAnswerCache) and the log this thread
   * writes; without it, one of `answerCacheBytes` for this thread alone.
   */
  answerCache?: { buffer: SharedArrayBuffer; log: number };
  /** The main thread's topology change stamps, for a DNS worker thread starting from its state. */
  answerStamps?: Uint32Array;
}

const RCODE_NAMES: Partial<Record<number, string>> = Object.fromEntries(Object.entries(Rcode).map(([k, v]) => [v, k]));
/** Answers names when no topology is loaded yet (upcheck still works; nothing else is ours). */
const EMPTY_INDEX = emptyView();
const TRANSPORTS: readonly Transport[] = ['udp', 'tcp'];

const KNOWN_TYPES = new Set<number>(Object.values(RRType));

/** Metric label of a query type: its name when known, else "other", so labels stay few (as CoreDNS does). */
function typeLabel(type: number): string {
  return KNOWN_TYPES.has(type) ? rrTypeName(type) : 'other';
}

const empty = (rcode: number): DnsResult => ({ rcode, authoritative: false, answers: [], authority: [], additional: [] });

export class DnsHandler {
  private readonly requests;
  private readonly responses;
  private readonly duration;
  private readonly malformed;
  private readonly fast: FastPath;
  next: NextHandler | null = null;
  /** The answer cache's buffer, for the DNS worker threads to share (null: the cache is off). */
  readonly answerCache: SharedArrayBuffer | null;
  /**
   * Label sets bound on first use (hot-path counters, so a label set appears in /metrics
   * once something was counted under it): requests by transport and type, responses by
   * the header's rcode, durations by transport.
   */
  private readonly requestCounters = new Map<number, HotCounter>();
  private readonly responseCounters: HotCounter[] = [];
  private readonly durations: HotHistogram[] = [];

  constructor(private readonly options: DnsHandlerOptions) {
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
      resolver: new PlatformResolver({ ttl: options.ttl, negativeTtl: options.negativeTtl }),
      recursionAvailable: () => this.recursionAvailable,
    });
    const cache = this.fast;
    metrics.counter('presence_dns_answer_cache_hits_total', 'Queries answered from the encoded-answer cache.', { total: () => cache.hits });
    metrics.counter('presence_dns_answer_cache_misses_total', 'Queries that encoded an answer for the cache.', { total: () => cache.misses });
  }

  private get recursionAvailable(): boolean {
    return this.next?.recursionAvailable ?? false;
  }

  /**
   * The reply to one message, through the chain: the fast path, then — decoding the
   * packet unless the fast path already did — the resolver (unless the fast path already
   * asked it), the next handler, REFUSED. At once when the reply is at hand; a promise
   * only when the next handler must wait (an upstream).
   */
  answer(packet: Buffer, client: Client): Reply {
    const started = performance.now();
    const { fast } = this;
    const { transport } = client;
    const fastReply = fast.answer(packet, transport, this.options.currentIndex());
    if (fastReply !== null) {
      this.received(transport, fast.question.type);
      return this.sent(fastReply, transport, started);
    }
    const decoded = fast.decoded ?? decodeQuery(packet);
    if (!decoded.ok) {
      this.malformed.inc();
      if (decoded.id === null) return null;
      return this.sent(encodeBareReply(decoded.id, decoded.opcode, decoded.recursionDesired, Rcode.FORMERR), transport, started);
    }
    const { query } = decoded;
    this.received(transport, query.question.type);
    const reply = this.chain(query, packet, client, fast.foreign);
    if (Buffer.isBuffer(reply)) return this.sent(reply, transport, started);
    return reply.then((bytes) => this.sent(bytes, transport, started));
  }

  /**
   * The reply to a query that a DNS worker thread passes on (a name it does not serve, for
   * the forwarder here): answered as `answer` would, but not counted again. Whatever
   * answering throws comes back as a rejection, never thrown at the caller.
   */
  async relay(packet: Buffer, client: Client): Promise<Buffer | null> {
    const decoded = decodeQuery(packet);
    return decoded.ok ? this.chain(decoded.query, packet, client, false) : null;
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

  /** The chain after the answer cache; `foreign`: the resolver already said the name is not ours. */
  private chain(query: DecodedQuery, packet: Buffer, client: Client, foreign: boolean): Buffer | Promise<Buffer> {
    const encode = (result: DnsResult, ednsOptions?: EdnsOption[]) => encodeResponse(packet, query, result, {
      transport: client.transport, maxUdpSize: this.options.maxUdpSize, recursionAvailable: this.recursionAvailable, ednsOptions,
    });
    if (query.opcode !== 0) return encodeBareReply(query.id, query.opcode, query.recursionDesired, Rcode.NOTIMP);
    if (query.edns && query.edns.version > 0) return encode(empty(Rcode.BADVERS));
    if (!foreign) {
      const platform = this.fast.answerDecoded(packet, query, client.transport, this.options.currentIndex() ?? EMPTY_INDEX);
      if (platform) return platform;
    }
    const { next } = this;
    if (!next) return encode(empty(Rcode.REFUSED));
    const cached = next.answerCached?.(query, packet, client);
    if (cached) return cached;
    return next.handle(query, packet, client).then((answer) => {
      if (!answer) return encode(empty(Rcode.REFUSED));
      return 'packet' in answer ? answer.packet : encode(answer.result, answer.ednsOptions);
    });
  }

  private received(transport: Transport, type: number): void {
    const key = (KNOWN_TYPES.has(type) ? type : 0) * 2 + (transport === 'tcp' ? 1 : 0);
    let counter = this.requestCounters.get(key);
    if (counter === undefined) {
      counter = this.options.metrics.hotCounter(this.requests, { proto: transport, type: typeLabel(type) });
      this.requestCounters.set(key, counter);
    }
    counter.inc();
  }

  /** Counts a reply on its way out, by its rcode, and how long it took. */
  private sent(reply: Buffer | null, transport: Transport, started: number): Buffer | null {
    if (reply === null) return null;
    const rcode = reply[3] & 0x0f;
    const t = transport === 'tcp' ? 1 : 0;
    const { metrics } = this.options;
    (this.responseCounters[rcode] ??= metrics.hotCounter(this.responses, { rcode: RCODE_NAMES[rcode] ?? String(rcode) })).inc();
    (this.durations[t] ??= metrics.hotHistogram(this.duration, { proto: TRANSPORTS[t] })).observe((performance.now() - started) / 1000);
    return reply;
  }
}
