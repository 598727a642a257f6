// Platform answers, with the answer cache in front of the resolver. A response
// to one fast-path key (codec/fast-key.ts: lower-cased name, type, class, EDNS, size limit)
// is the same bytes for every client apart from the ID, the RD/CD bits and the case of the
// question, because the encoder copies the question from the query and compresses owner
// names to pointers into it. So each such answer is encoded once, kept in the answer cache
// every DNS thread shares (answer-cache.ts), and served by copying it and patching those
// few bytes (and RA, which follows the forwarder's upstreams). On a miss the packet is
// decoded once, the resolver asked once, and the reply encoded, kept and returned; an
// answer of several records is kept as a ring of differently shuffled encodings, drawn
// from that one lookup and rotated per query. Whatever has no key (codec/fast-key.ts) is
// answered by `answerDecoded` from the query the caller decoded, and not kept.
//
// An entry stays valid across topology deltas until one touches what it was computed
// from: each entry carries its cache tag (cache-tags.ts) and the stamp of that tag when
// it was encoded. Stamps are numbered by the main thread, one per topology change, the
// same on every DNS thread: a change sets the stamps of the tags it touches (all of them
// when the topology is replaced), and an entry whose tag's stamp moved is re-encoded on
// its next query. Because the numbers are shared, an entry one thread encoded is valid
// for another thread exactly when both answer from the same state of that tag.
import type { TopologyChange } from './follower.ts';
import type { TopologyLookup } from '../image/view.ts';
import { NOT_OURS, STAMP_SLOTS, type AnswerCache } from './answer-cache.ts';
import type { PlatformResolver } from './resolver.ts';
import {
  decodeQuery, encodeResponse, fastKey, FAST_KEY_BYTES, Flag, HEADER_SIZE,
  type DecodedQuery, type DecodeResult, type DnsResult, type FastQuestion, type Transport,
} from '../codec/index.ts';

export interface FastPathOptions {
  /** Largest UDP answer for EDNS clients (dns.max_udp_size). */
  maxUdpSize: number;
  /** Where answers are kept; null: none are (dns.answer_cache_bytes 0), every query is answered anew. */
  cache: AnswerCache | null;
  /** The main thread's stamps, for a DNS worker thread that starts late (`stampTable`). */
  stamps?: Uint32Array;
  /** Differently shuffled encodings kept per multi-record answer. */
  ringSize?: number;
  resolver: PlatformResolver;
  /** Whether RA is set: asked per answer, as the forwarder's upstreams come and go. */
  recursionAvailable: () => boolean;
}

/** The flag bits a kept answer takes from each query (RD, CD) or from the moment (RA), in the flags' second byte. */
const RD = Flag.RD >> 8;
const RA = Flag.RA;
const CD = Flag.CD;

/**
 * One thread's platform answers: serves what the answer cache holds for a query's key
 * while its tag's stamp on this thread holds, and on a miss decodes, resolves, encodes
 * and keeps it. What `answer` could not serve it leaves in `decoded` and `foreign` for
 * the rest of the chain, so nothing is decoded or resolved twice.
 */
export class FastPath {
  private readonly scratch = Buffer.alloc(FAST_KEY_BYTES);
  private readonly ringSize: number;
  private readonly stamps: Uint32Array;
  /** The question of the last answer served (its type is counted). */
  readonly question: FastQuestion = { nameEnd: 0, type: 0 };
  /** After `answer` returned null: the packet decoded, when it got as far as decoding it. */
  decoded: DecodeResult | null = null;
  /** After `answer` returned null: the name is known not to be a platform name (kept so, or the resolver just said so). */
  foreign = false;
  hits = 0;
  misses = 0;

  constructor(private readonly options: FastPathOptions) {
    this.ringSize = options.ringSize ?? 8;
    this.stamps = options.stamps ? Uint32Array.from(options.stamps) : new Uint32Array(STAMP_SLOTS);
  }

  /** The topology changed (change number `stamp`): what it touched is re-encoded on its next query. */
  changed(change: TopologyChange, stamp: number): void {
    if (change === 'replaced') {
      this.stamps.fill(stamp);
      return;
    }
    for (const tag of change.tags) this.stamps[tag & (STAMP_SLOTS - 1)] = stamp;
  }

  /** A copy of the stamps, for a thread that starts from this one's state. */
  stampTable(): Uint32Array {
    return this.stamps.slice();
  }

  /**
   * The reply to `packet` from the answer cache, or encoded now and kept; null when it is
   * not one to keep (no key, no topology yet, the cache off) or not a platform name.
   * Synchronous, and on a hit no decoding at all.
   */
  answer(packet: Buffer, transport: Transport, index: TopologyLookup | null): Buffer | null {
    this.decoded = null;
    this.foreign = false;
    const { cache } = this.options;
    if (index === null || cache === null) return null;
    const { question, scratch } = this;
    const length = fastKey(packet, transport, this.options.maxUdpSize, scratch, question);
    if (length === 0) return null;
    let out = cache.get(scratch, length, this.stamps);
    if (out !== null) this.hits++;
    else {
      this.misses++;
      out = this.encodeAndKeep(packet, transport, index, cache, length);
      if (out === null) return null;
    }
    if (out === NOT_OURS) {
      this.foreign = true;
      return null;
    }
    out[0] = packet[0];
    out[1] = packet[1];
    out[2] = (out[2] & ~RD) | (packet[2] & RD);
    out[3] = (out[3] & ~(CD | RA)) | (packet[3] & CD) | (this.options.recursionAvailable() ? RA : 0);
    packet.copy(out, HEADER_SIZE, HEADER_SIZE, question.nameEnd);
    return out;
  }

  /** The platform reply to an already decoded query, not kept; null when the name is not ours. */
  answerDecoded(packet: Buffer, query: DecodedQuery, transport: Transport, index: TopologyLookup): Buffer | null {
    const { result } = this.options.resolver.resolve(index, query.question);
    return result && this.encode(packet, query, transport, result);
  }

  /**
   * A miss: decodes the packet, asks the resolver once, encodes its answer (a ring of
   * shuffles of it when it has several records) and keeps it under the key in `scratch`.
   * Returns the first encoding (the cache keeps its own copy), NOT_OURS, or null when the
   * packet does not decode (left in `decoded`).
   */
  private encodeAndKeep(packet: Buffer, transport: Transport, index: TopologyLookup, cache: AnswerCache, keyLength: number): Buffer | typeof NOT_OURS | null {
    const decoded = (this.decoded = decodeQuery(packet));
    if (!decoded.ok) return null;
    const { query } = decoded;
    const { result, tag, reorder } = this.options.resolver.resolve(index, query.question);
    const stamp = this.stamps[tag & (STAMP_SLOTS - 1)];
    if (result === null) {
      cache.put(this.scratch, keyLength, { encodings: null, tag, stamp });
      return NOT_OURS;
    }
    const encodings = [this.encode(packet, query, transport, result)];
    if (reorder) for (let i = 1; i < this.ringSize; i++) encodings.push(this.encode(packet, query, transport, reorder()));
    cache.put(this.scratch, keyLength, { encodings, tag, stamp });
    return encodings[0];
  }

  private encode(packet: Buffer, query: DecodedQuery, transport: Transport, result: DnsResult): Buffer {
    return encodeResponse(packet, query, result, {
      transport, maxUdpSize: this.options.maxUdpSize, recursionAvailable: this.options.recursionAvailable(),
    });
  }
}
