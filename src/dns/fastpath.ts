// The hot path for platform names (DESIGN §9). A response to one (lower-cased name,
// type, class, EDNS, size limit) is the same bytes for every client apart from the ID,
// the RD/CD bits and the case of the question, because the encoder copies the question
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
import { HEADER_SIZE, MIN_UDP_SIZE, RRType } from './wire.ts';

/** Where the question name ends and its type: what `fastKey` learned besides the key. */
export interface FastQuestion {
  /** Offset where the question name ends (the bytes copied from the query). */
  nameEnd: number;
  type: number;
}

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

const TCP_LIMIT = 65535;
const OPCODE_OR_QR = 0xf8;
const RD = 0x01;
const RA = 0x80;
const CD = 0x10;

/**
 * Reads header, question and an optional lone OPT record — only what the lookup needs —
 * and writes the cache key into `scratch`: lower-cased question name (wire form), type,
 * class, EDNS or not, and the size limit; returns its length. Returns 0 for anything
 * unusual (not a plain query, pointers, odd labels, several additional records, EDNS
 * version > 0): the general path handles those.
 */
export function fastKey(packet: Buffer, transport: 'udp' | 'tcp', maxUdpSize: number, scratch: Buffer, out: FastQuestion): number {
  const length = packet.length;
  if (length < HEADER_SIZE + 5) return 0;
  if (packet[2] & OPCODE_OR_QR) return 0;
  if (packet[4] !== 0 || packet[5] !== 1) return 0;
  if (packet[6] | packet[7] | packet[8] | packet[9] | packet[10]) return 0;
  const arcount = packet[11];
  if (arcount > 1) return 0;
  let offset = HEADER_SIZE;
  for (;;) {
    if (offset >= length) return 0;
    const label = packet[offset];
    if (label === 0) break;
    // Pointers and extended label types are for the general decoder (FORMERR).
    if (label > 63) return 0;
    const end = offset + 1 + label;
    if (end > length || end - HEADER_SIZE > 255) return 0;
    for (let i = offset + 1; i < end; i++) {
      const c = packet[i];
      // Dots inside labels and non-ASCII bytes are rare; the general path decides them.
      if (c === 0x2e || c >= 0x80) return 0;
      scratch[i - HEADER_SIZE] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
    scratch[offset - HEADER_SIZE] = label;
    offset = end;
  }
  const nameEnd = offset + 1;
  const questionEnd = nameEnd + 4;
  if (questionEnd > length) return 0;
  let limit = transport === 'tcp' ? TCP_LIMIT : MIN_UDP_SIZE;
  // 1 marks "no EDNS" (every real limit is ≥ 512), so EDNS-512 and plain 512 differ.
  let ednsMark = 1;
  if (arcount === 1) {
    // Only a root-owned OPT: anything else goes the general way.
    if (packet[questionEnd] !== 0 || questionEnd + 11 > length) return 0;
    if (packet.readUInt16BE(questionEnd + 1) !== RRType.OPT) return 0;
    if (packet[questionEnd + 6] !== 0) return 0;
    if (questionEnd + 11 + packet.readUInt16BE(questionEnd + 9) > length) return 0;
    const udpSize = packet.readUInt16BE(questionEnd + 3);
    if (transport === 'udp') limit = Math.max(MIN_UDP_SIZE, Math.min(udpSize, maxUdpSize));
    ednsMark = 2;
  }
  const nameLength = nameEnd - HEADER_SIZE;
  scratch[nameLength - 1] = 0;
  packet.copy(scratch, nameLength, nameEnd, questionEnd);
  scratch[nameLength + 4] = ednsMark;
  scratch.writeUInt16BE(limit, nameLength + 5);
  out.nameEnd = nameEnd;
  out.type = packet.readUInt16BE(nameEnd);
  return nameLength + 7;
}

/**
 * One thread's fast path: parses the key, serves what the answer cache holds for it while
 * its tag's stamp on this thread holds, and on a miss has the general path encode it
 * (a ring of shuffled encodings for several records) and keeps it in the cache.
 */
export class FastPath {
  private readonly scratch = Buffer.alloc(512);
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
