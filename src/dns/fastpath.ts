// The hot path for platform names. A response to one key (codec/fast-key.ts: lower-cased
// name, type, class, EDNS, size limit) is the same bytes for every client apart from the
// ID, the RD/CD bits and the case of the question, because the encoder copies the question
// from the query and compresses owner names to pointers into it. So each such answer is
// encoded once by the general path (decode → resolver → encoder), kept in the answer
// cache every DNS thread shares (answer-cache.ts), and served by copying it and patching
// those few bytes (and RA, which follows the forwarder's upstreams). Answers with more
// than one record keep a small ring of differently shuffled encodings, rotated per
// query. Anything this parser is not sure about returns null: the caller then runs the
// general path, which answers it exactly as it always does.
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
import { NOT_OURS, STAMP_SLOTS, type AnswerCache, type AnswerEntry } from './answer-cache.ts';
import { fastKey, FAST_KEY_BYTES, Flag, HEADER_SIZE, type FastQuestion } from '../codec/index.ts';

/** What the general path gives back for a query on a cache miss. */
export type Built =
  | { kind: 'answer'; packet: Buffer; shuffled: boolean; tag: number }
  /** Not a platform name (or not for this path): never served here. */
  | { kind: 'pass'; tag: number };

export interface FastPathOptions {
  /** Largest UDP answer for EDNS clients (dns.max_udp_size). */
  maxUdpSize: number;
  /** Where answers are kept; null turns the fast path off (dns.answer_cache_bytes 0). */
  cache: AnswerCache | null;
  /** The main thread's stamps, for a DNS worker thread that starts late (`stampTable`). */
  stamps?: Uint32Array;
  /** Differently shuffled encodings kept per multi-record answer. */
  ringSize?: number;
  /** Encodes one answer with the general path; called once per ring slot on a miss. */
  build: (packet: Buffer, index: TopologyLookup, transport: 'udp' | 'tcp') => Built;
  /** Whether RA is set: asked per answer, as the forwarder's upstreams come and go. */
  recursionAvailable: () => boolean;
  /** Called for every answer served here, to count it. */
  served: (transport: 'udp' | 'tcp', type: number, rcode: number) => void;
}

/** The flag bits a kept answer takes from each query (RD, CD) or from the moment (RA), in the flags' second byte. */
const RD = Flag.RD >> 8;
const RA = Flag.RA;
const CD = Flag.CD;

/**
 * One thread's fast path: parses the key, serves what the answer cache holds for it while
 * its tag's stamp on this thread holds, and on a miss has the general path encode it
 * (a ring of shuffled encodings for several records) and keeps it in the cache.
 */
export class FastPath {
  private readonly scratch = Buffer.alloc(FAST_KEY_BYTES);
  private readonly question: FastQuestion = { nameEnd: 0, type: 0 };
  private readonly ringSize: number;
  private readonly stamps: Uint32Array;
  hits = 0;
  misses = 0;
  /** Whether the last `answer` that returned null did so for a name we do not serve. */
  foreign = false;

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
    for (let k = 0; k < change.tags.length; k++) this.stamps[change.tags[k] & (STAMP_SLOTS - 1)] = stamp;
  }

  /** A copy of the stamps, for a thread that starts from this one's state. */
  stampTable(): Uint32Array {
    return this.stamps.slice();
  }

  /** The reply bytes, or null when the general path must answer this packet. */
  answer(packet: Buffer, transport: 'udp' | 'tcp', index: TopologyLookup | null): Buffer | null {
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
      const entry = this.build(packet, index, transport);
      cache.put(scratch, length, entry);
      // The cache keeps its own copy: the first encoding is this reply.
      out = entry.encodings === null ? NOT_OURS : entry.encodings[0];
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
    this.options.served(transport, question.type, out[3] & 0x0f);
    return out;
  }

  private build(packet: Buffer, index: TopologyLookup, transport: 'udp' | 'tcp'): AnswerEntry {
    const first = this.options.build(packet, index, transport);
    const stamp = this.stamps[first.tag & (STAMP_SLOTS - 1)];
    if (first.kind === 'pass') return { encodings: null, tag: first.tag, stamp };
    const encodings = [first.packet];
    if (first.shuffled) {
      for (let i = 1; i < this.ringSize; i++) {
        const more = this.options.build(packet, index, transport);
        if (more.kind === 'answer') encodings.push(more.packet);
      }
    }
    return { encodings, tag: first.tag, stamp };
  }
}
