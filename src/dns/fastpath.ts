// The hot path for platform names (DESIGN §9). A response to one (lower-cased name,
// type, class, EDNS, size limit) is the same bytes for every client apart from the ID,
// the RD/CD bits and the case of the question, because the encoder copies the question
// from the query and compresses owner names to pointers into it. So each such answer is
// encoded once by the general path (decode → resolver → encoder), kept here, and served
// by copying it and patching those few bytes (and RA, which follows the forwarder's
// upstreams). Answers with more than one record keep a small ring of differently
// shuffled encodings, rotated per query. Anything this parser is not sure about returns
// null: the caller then runs the general path, which answers it exactly as it always does.
//
// An entry stays valid across topology deltas until one touches what it was computed
// from: each entry carries its cache tag (cache-tags.ts) and the epoch of that tag when it
// was encoded; a delta bumps the epochs of the tags it touches, and an entry whose epoch
// moved is re-encoded on its next query. A replaced topology flushes everything.
import type { TopologyLookup } from '../topology/view.ts';
import { STATIC_TAG } from '../topology/cache-tags.ts';
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
  /** Memory bound of the cache, bytes (approximate: encodings plus keys). 0 turns the fast path off. */
  maxBytes: number;
  /** Differently shuffled encodings kept per multi-record answer. */
  ringSize?: number;
  /** Encodes one answer with the general path; called once per ring slot on a miss. */
  build: (packet: Buffer, index: TopologyLookup, transport: 'udp' | 'tcp') => Built;
  /** Whether RA is set: asked per answer, as the forwarder's upstreams come and go. */
  recursionAvailable: () => boolean;
  /** Called for every answer served here, to count it. */
  served: (transport: 'udp' | 'tcp', type: number, rcode: number) => void;
}

interface Ring {
  /** Encodings as latin1 strings (see `Entry`). */
  readonly encodings: string[];
  next: number;
}

/**
 * An encoded answer, held as a latin1 string: no Buffer view and no pooled ArrayBuffer
 * kept alive by a few bytes of it. A ring for shuffled answers; null for a name that is
 * not ours (the general path answers it every time).
 */
type Encoded = string | Ring | null;

interface Entry {
  readonly encoded: Encoded;
  readonly tag: number;
  /** The tag's epoch when this was encoded. */
  readonly epoch: number;
}

/** Epoch slots, indexed by the low bits of a tag: bounded memory; a shared slot only re-encodes more. */
const EPOCH_SLOTS = 1 << 16;
const TCP_LIMIT = 65535;
/** A rough per-entry cost of the map slot and string headers. */
const ENTRY_OVERHEAD = 64;
const OPCODE_OR_QR = 0xf8;
const RD = 0x01;
const RA = 0x80;
const CD = 0x10;

/**
 * Reads header, question and an optional lone OPT record — only what the lookup needs —
 * and returns the cache key: lower-cased question name (wire form), type, class, EDNS
 * or not, and the size limit. Returns null for anything unusual (not a plain query,
 * pointers, odd labels, several additional records, EDNS version > 0): the general
 * path handles those.
 */
export function fastKey(packet: Buffer, transport: 'udp' | 'tcp', maxUdpSize: number, scratch: Buffer, out: FastQuestion): string | null {
  const length = packet.length;
  if (length < HEADER_SIZE + 5) return null;
  if (packet[2] & OPCODE_OR_QR) return null;
  if (packet[4] !== 0 || packet[5] !== 1) return null;
  if (packet[6] | packet[7] | packet[8] | packet[9] | packet[10]) return null;
  const arcount = packet[11];
  if (arcount > 1) return null;
  let offset = HEADER_SIZE;
  for (;;) {
    if (offset >= length) return null;
    const label = packet[offset];
    if (label === 0) break;
    // Pointers and extended label types are for the general decoder (FORMERR).
    if (label > 63) return null;
    const end = offset + 1 + label;
    if (end > length || end - HEADER_SIZE > 255) return null;
    for (let i = offset + 1; i < end; i++) {
      const c = packet[i];
      // Dots inside labels and non-ASCII bytes are rare; the general path decides them.
      if (c === 0x2e || c >= 0x80) return null;
      scratch[i - HEADER_SIZE] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
    scratch[offset - HEADER_SIZE] = label;
    offset = end;
  }
  const nameEnd = offset + 1;
  const questionEnd = nameEnd + 4;
  if (questionEnd > length) return null;
  let limit = transport === 'tcp' ? TCP_LIMIT : MIN_UDP_SIZE;
  // 1 marks "no EDNS" (every real limit is ≥ 512), so EDNS-512 and plain 512 differ.
  let ednsMark = 1;
  if (arcount === 1) {
    // Only a root-owned OPT: anything else goes the general way.
    if (packet[questionEnd] !== 0 || questionEnd + 11 > length) return null;
    if (packet.readUInt16BE(questionEnd + 1) !== RRType.OPT) return null;
    if (packet[questionEnd + 6] !== 0) return null;
    if (questionEnd + 11 + packet.readUInt16BE(questionEnd + 9) > length) return null;
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
  return scratch.toString('latin1', 0, nameLength + 7);
}

/**
 * The cache of encoded answers for the index in service. Bounded by bytes with two
 * generations: new entries go to the young map; when it is full it becomes the old one
 * and the previous old one is dropped, and a hit in the old map moves the entry back.
 * So hot names survive a flood of random names, and memory never exceeds the bound.
 */
export class FastPath {
  private young = new Map<string, Entry>();
  private old = new Map<string, Entry>();
  private youngBytes = 0;
  private readonly scratch = Buffer.alloc(512);
  private readonly question: FastQuestion = { nameEnd: 0, type: 0 };
  private readonly ringSize: number;
  private readonly epochs = new Uint32Array(EPOCH_SLOTS);
  hits = 0;
  misses = 0;
  /** Whether the last `answer` that returned null did so for a name we do not serve. */
  foreign = false;

  constructor(private readonly options: FastPathOptions) {
    this.ringSize = options.ringSize ?? 8;
  }

  /** Entries held (answers and "not here" marks). */
  get size(): number {
    return this.young.size + this.old.size;
  }

  /** Drops every entry (the topology was replaced, not changed by a delta). */
  flush(): void {
    this.young = new Map();
    this.old = new Map();
    this.youngBytes = 0;
  }

  /** Marks every entry carrying one of `tags` for re-encoding on its next query. */
  invalidate(tags: ArrayLike<number>): void {
    for (let k = 0; k < tags.length; k++) this.epochs[tags[k] & (EPOCH_SLOTS - 1)]++;
  }

  private fresh(entry: Entry): boolean {
    return entry.tag === STATIC_TAG || this.epochs[entry.tag & (EPOCH_SLOTS - 1)] === entry.epoch;
  }

  /** The reply bytes, or null when the general path must answer this packet. */
  answer(packet: Buffer, transport: 'udp' | 'tcp', index: TopologyLookup | null): Buffer | null {
    this.foreign = false;
    if (index === null || this.options.maxBytes === 0) return null;
    const { question } = this;
    const key = fastKey(packet, transport, this.options.maxUdpSize, this.scratch, question);
    if (key === null) return null;
    let entry = this.young.get(key);
    if (entry !== undefined && this.fresh(entry)) this.hits++;
    else {
      const old = entry === undefined ? this.old.get(key) : undefined;
      if (old !== undefined) this.old.delete(key);
      if (old !== undefined && this.fresh(old)) entry = old;
      else {
        this.misses++;
        entry = this.build(packet, index, transport);
      }
      this.insert(key, entry);
    }
    const { encoded } = entry;
    if (encoded === null) {
      this.foreign = true;
      return null;
    }
    let template: string;
    if (typeof encoded === 'string') template = encoded;
    else {
      template = encoded.encodings[encoded.next];
      encoded.next = (encoded.next + 1) % encoded.encodings.length;
    }
    const out = Buffer.from(template, 'latin1');
    out[0] = packet[0];
    out[1] = packet[1];
    out[2] = (out[2] & ~RD) | (packet[2] & RD);
    out[3] = (out[3] & ~(CD | RA)) | (packet[3] & CD) | (this.options.recursionAvailable() ? RA : 0);
    packet.copy(out, HEADER_SIZE, HEADER_SIZE, question.nameEnd);
    this.options.served(transport, question.type, out[3] & 0x0f);
    return out;
  }

  private build(packet: Buffer, index: TopologyLookup, transport: 'udp' | 'tcp'): Entry {
    const first = this.options.build(packet, index, transport);
    const entry = (encoded: Encoded): Entry => ({ encoded, tag: first.tag, epoch: this.epochs[first.tag & (EPOCH_SLOTS - 1)] });
    if (first.kind === 'pass') return entry(null);
    const encoded = first.packet.toString('latin1');
    if (!first.shuffled) return entry(encoded);
    const encodings = [encoded];
    for (let i = 1; i < this.ringSize; i++) {
      const more = this.options.build(packet, index, transport);
      if (more.kind === 'answer') encodings.push(more.packet.toString('latin1'));
    }
    return entry({ encodings, next: 0 });
  }

  private insert(key: string, entry: Entry): void {
    const { encoded } = entry;
    const size = encoded === null ? 0 : typeof encoded === 'string' ? encoded.length : encoded.encodings.reduce((n, e) => n + e.length, 0);
    const bytes = ENTRY_OVERHEAD + key.length + size;
    // Each generation gets half of the budget; anything bigger is not kept at all.
    const half = this.options.maxBytes / 2;
    if (bytes > half) return;
    if (this.youngBytes + bytes > half) {
      this.old = this.young;
      this.young = new Map();
      this.youngBytes = 0;
    }
    this.young.set(key, entry);
    this.youngBytes += bytes;
  }
}
