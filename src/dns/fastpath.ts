// The hot path for platform names (DESIGN §9). A response to one (lower-cased name,
// type, class, EDNS, size limit) is the same bytes for every client apart from the ID,
// the RD/CD bits and the case of the question, because the encoder copies the question
// from the query and compresses owner names to pointers into it. So each such answer is
// encoded once by the general path (decode → resolver → encoder), kept in an answer
// store, and served by copying it and patching those few bytes (and RA, which follows
// the forwarder's upstreams). Answers with more than one record keep a small ring of
// differently shuffled encodings, rotated per query. Anything this parser is not sure
// about returns null: the caller then runs the general path, which answers it exactly
// as it always does.
//
// An entry stays valid across topology deltas until one touches what it was computed
// from: each entry carries its cache tag (cache-tags.ts) and the stamp of that tag when
// it was encoded. Stamps are numbered by the main thread, one per topology change, the
// same on every DNS thread: a change sets the stamps of the tags it touches (all of them
// when the topology is replaced), and an entry whose tag's stamp moved is re-encoded on
// its next query. Because the numbers are shared, an entry one thread encoded is valid
// for another thread exactly when both answer from the same state of that tag.
import type { TopologyChange } from '../topology/follower.ts';
import type { TopologyLookup } from '../topology/view.ts';
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

/** One answer to keep: its encodings (null: not a name of ours), and its tag and that tag's stamp when encoded. */
export interface AnswerEntry {
  readonly encodings: Buffer[] | null;
  readonly tag: number;
  readonly stamp: number;
}

/** `AnswerStore.get` found the key, and it is not a name this path serves. */
export const NOT_OURS = 1;

/** Where encoded answers are kept, keyed by the bytes `fastKey` wrote. */
export interface AnswerStore {
  /**
   * A fresh copy of the answer kept for `key[0, length)` (one of its encodings, in turn),
   * NOT_OURS, or null on a miss or when its tag's stamp in `stamps` has moved.
   */
  get(key: Buffer, length: number, stamps: Uint32Array): Buffer | typeof NOT_OURS | null;
  put(key: Buffer, length: number, entry: AnswerEntry): void;
  /** The topology was replaced: nothing kept can be fresh again. */
  flush(): void;
}

export interface FastPathOptions {
  /** Largest UDP answer for EDNS clients (dns.max_udp_size). */
  maxUdpSize: number;
  /** Where answers are kept; null turns the fast path off (dns.answer_cache_bytes 0). */
  store: AnswerStore | null;
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

/** Stamp slots, indexed by the low bits of a tag: bounded memory; a shared slot only re-encodes more. */
export const STAMP_SLOTS = 1 << 16;
const TCP_LIMIT = 65535;
const OPCODE_OR_QR = 0xf8;
const RD = 0x01;
const RA = 0x80;
const CD = 0x10;

/**
 * Reads header, question and an optional lone OPT record — only what the lookup needs —
 * and writes the cache key into `scratch`: lower-cased question name (wire form), type,
 * class, EDNS or not, and the size limit; returns its length. Returns 0 for anything unusual (not a plain query,
 * pointers, odd labels, several additional records, EDNS version > 0): the general
 * path handles those.
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
 * The cache of encoded answers for the index in service. Bounded by bytes with two
 * generations: new entries go to the young map; when it is full it becomes the old one
 * and the previous old one is dropped, and a hit in the old map moves the entry back.
 * So hot names survive a flood of random names, and memory never exceeds the bound.
 */
interface Ring {
  /** Encodings as latin1 strings (see `Kept`). */
  readonly encodings: string[];
  next: number;
}

/**
 * An encoded answer, held as a latin1 string: no Buffer view and no pooled ArrayBuffer
 * kept alive by a few bytes of it. A ring for shuffled answers; null for a name that is
 * not ours (the general path answers it every time).
 */
interface Kept {
  readonly encoded: string | Ring | null;
  readonly tag: number;
  readonly stamp: number;
}

/** A rough per-entry cost of the map slot and string headers. */
const ENTRY_OVERHEAD = 64;

/**
 * One thread's own answers, bounded by bytes with two generations: new entries go to
 * the young map; when it is full it becomes the old one and the previous old one is
 * dropped, and a hit in the old map moves the entry back. So hot names survive a flood
 * of random names, and memory never exceeds the bound.
 */
export class ThreadAnswers implements AnswerStore {
  private young = new Map<string, Kept>();
  private old = new Map<string, Kept>();
  private youngBytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Entries held (answers and "not ours" marks). */
  get size(): number {
    return this.young.size + this.old.size;
  }

  get(key: Buffer, length: number, stamps: Uint32Array): Buffer | typeof NOT_OURS | null {
    const k = key.toString('latin1', 0, length);
    let kept = this.young.get(k);
    if (kept === undefined) {
      kept = this.old.get(k);
      if (kept === undefined) return null;
      this.old.delete(k);
      this.keep(k, kept);
    }
    if (stamps[kept.tag & (STAMP_SLOTS - 1)] !== kept.stamp) return null;
    const { encoded } = kept;
    if (encoded === null) return NOT_OURS;
    if (typeof encoded === 'string') return Buffer.from(encoded, 'latin1');
    const template = encoded.encodings[encoded.next];
    encoded.next = (encoded.next + 1) % encoded.encodings.length;
    return Buffer.from(template, 'latin1');
  }

  put(key: Buffer, length: number, entry: AnswerEntry): void {
    const { encodings } = entry;
    let encoded: Kept['encoded'] = null;
    if (encodings !== null) {
      const strings = encodings.map((e) => e.toString('latin1'));
      // The caller serves the first encoding now; the ring goes on from the second.
      encoded = strings.length === 1 ? strings[0] : { encodings: strings, next: 1 % strings.length };
    }
    this.keep(key.toString('latin1', 0, length), { encoded, tag: entry.tag, stamp: entry.stamp });
  }

  flush(): void {
    this.young = new Map();
    this.old = new Map();
    this.youngBytes = 0;
  }

  private keep(key: string, kept: Kept): void {
    const { encoded } = kept;
    const size = encoded === null ? 0 : typeof encoded === 'string' ? encoded.length : encoded.encodings.reduce((n, e) => n + e.length, 0);
    const bytes = ENTRY_OVERHEAD + key.length + size;
    // Each generation gets half of the budget; anything bigger is not kept at all.
    const half = this.maxBytes / 2;
    if (bytes > half) return;
    if (this.youngBytes + bytes > half) {
      this.old = this.young;
      this.young = new Map();
      this.youngBytes = 0;
    }
    this.young.set(key, kept);
    this.youngBytes += bytes;
  }
}

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
      this.options.store?.flush();
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
    const { store } = this.options;
    if (index === null || store === null) return null;
    const { question, scratch } = this;
    const length = fastKey(packet, transport, this.options.maxUdpSize, scratch, question);
    if (length === 0) return null;
    let out = store.get(scratch, length, this.stamps);
    if (out !== null) this.hits++;
    else {
      this.misses++;
      const entry = this.build(packet, index, transport);
      store.put(scratch, length, entry);
      // The store keeps its own copy: the first encoding is this reply.
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
