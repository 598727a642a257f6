// The fast path's cache of encoded answers, shared by every DNS thread: one
// SharedArrayBuffer that the main thread allocates and hands to each DNS worker thread,
// so an answer one thread encoded serves all of them and is kept once, not per thread.
// Bounded by its size (dns.answer_cache_bytes): a flood of new names wraps the logs over
// the oldest answers, which cost one encode each when asked again.
//
// Lock-free, and no thread ever waits. Each thread appends to a log of its own (so each
// log has one writer), and publishes an entry in a shared hash index: a bucket of four
// slots, each naming a log, a position in it and the key's hash. A writer takes the slot
// already holding its key's hash, else an empty one, else the one naming the oldest
// entry, so two hot names whose hashes meet do not evict each other. A log's positions
// only grow (modulo 2^32) and it wraps over its oldest entries: its writer moves the
// log's head past an entry's space before it writes there. A reader follows a slot,
// checks that the entry is the one it names (its stored position, its key, its tag's
// stamp), copies the answer out and reads that log's head again: if the head has moved
// a whole log's length past the entry, the copy may be torn and counts as a miss. So no
// reader serves bytes being overwritten; the worst a race costs is one more encode.
// Every length read from a log is bounds-checked, as a torn entry may hold anything.

/** Stamp slots, indexed by the low bits of a tag: bounded memory; a shared slot only re-encodes more. */
export const STAMP_SLOTS = 1 << 16;

/** `get` found the key, and it is not a name the fast path serves. */
export const NOT_OURS = 1;

/** One answer to keep: its encodings (null: not a name of ours), and its tag and that tag's stamp when encoded. */
export interface AnswerEntry {
  readonly encodings: Buffer[] | null;
  readonly tag: number;
  readonly stamp: number;
}

/** Control words: log count, bytes per log, index slots, then each log's head. */
const LOGS = 0;
const LOG_BYTES = 1;
const SLOTS = 2;
const HEADS = 3;
export const MAX_LOGS = 64;
/** Room for the control words, rounded up so that the slots start on a cache line. */
const CONTROL_WORDS = 80;
/** Entry header: size, position, tag, stamp (u32 each), key length, encodings (u16 each). */
const ENTRY_HEADER = 20;
/** Log bytes per index slot: 2–4 slots per entry of a typical answer (100–250 bytes), so few buckets overflow. */
const BYTES_PER_SLOT = 64;
/** Slots per bucket: 4 × 16 bytes, one cache line, so a lookup touches one line of the index. */
const BUCKET = 4;
const MIN_LOG_BYTES = 1 << 16;
/** Each slot: hash, position (low bit set: in use), log, unused — four Int32 words side by side. */
const SLOT_WORDS = 4;
const SLOT_HASH = 0;
const SLOT_POSITION = 1;
const SLOT_LOG = 2;

const align8 = (n: number) => (n + 7) & ~7;
/** The largest power of two ≤ n. */
const floorPow2 = (n: number) => 2 ** Math.floor(Math.log2(n));

/** FNV-1a over key[0, length). */
function hashKey(key: Buffer, length: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < length; i++) h = Math.imul(h ^ key[i], 0x01000193);
  return h | 0;
}

/**
 * The buffer for at most `bytes` of answers written by `logs` threads: 80 % for the logs
 * (each a power of two), the rest for the index (a power of two of slots).
 */
export function allocateAnswerCache(bytes: number, logs: number): SharedArrayBuffer {
  if (!Number.isInteger(logs) || logs < 1 || logs > MAX_LOGS) throw new Error(`the answer cache takes 1 to ${MAX_LOGS} threads, not ${logs}`);
  const logBytes = Math.max(MIN_LOG_BYTES, floorPow2((bytes * 0.8) / logs));
  const slots = floorPow2((logs * logBytes) / BYTES_PER_SLOT);
  const buffer = new SharedArrayBuffer(CONTROL_WORDS * 4 + slots * SLOT_WORDS * 4 + logs * logBytes);
  const control = new Int32Array(buffer, 0, CONTROL_WORDS);
  control[LOGS] = logs;
  control[LOG_BYTES] = logBytes;
  control[SLOTS] = slots;
  return buffer;
}

export class AnswerCache {
  private readonly control: Int32Array;
  /**
   * The index, SLOT_WORDS per slot: the key's hash (to pass over the other slots of a
   * bucket without reading their entries), the entry's position (low bit set; 0: empty)
   * and the log it is in.
   */
  private readonly slots: Int32Array;
  private readonly slotCount: number;
  /** Every log, one after the other. */
  private readonly bytes: Buffer;
  private readonly words: Uint32Array;
  private readonly logBytes: number;
  private readonly logs: number;
  /** Entries larger than this are not kept (a ring of TCP answers near 64 KiB each). */
  private readonly maxEntry: number;
  /** Which encoding of a shuffled answer this thread serves next. */
  private turn = 0;

  /** `log`: the log this thread writes (0 for the main thread, one per DNS worker thread). */
  constructor(buffer: SharedArrayBuffer, private readonly log: number) {
    this.control = new Int32Array(buffer, 0, CONTROL_WORDS);
    const logs = (this.logs = this.control[LOGS]);
    this.logBytes = this.control[LOG_BYTES];
    if (log < 0 || log >= logs) throw new Error(`the answer cache has ${logs} logs; there is no log ${log}`);
    const slots = (this.slotCount = this.control[SLOTS]);
    let at = CONTROL_WORDS * 4;
    this.slots = new Int32Array(buffer, at, slots * SLOT_WORDS);
    at += slots * SLOT_WORDS * 4;
    this.bytes = Buffer.from(buffer, at, logs * this.logBytes);
    this.words = new Uint32Array(buffer, at, (logs * this.logBytes) / 4);
    this.maxEntry = Math.min(this.logBytes / 8, 1 << 20);
  }

  /**
   * A fresh copy of the answer kept for `key[0, length)` (one of its encodings, in turn),
   * NOT_OURS, or null on a miss or when its tag's stamp in `stamps` has moved.
   */
  get(key: Buffer, length: number, stamps: Uint32Array): Buffer | typeof NOT_OURS | null {
    const hash = hashKey(key, length);
    const bucket = (hash & (this.slotCount - 1) & ~(BUCKET - 1)) * SLOT_WORDS;
    for (let s = bucket; s < bucket + BUCKET * SLOT_WORDS; s += SLOT_WORDS) {
      if (Atomics.load(this.slots, s + SLOT_HASH) !== hash) continue;
      const ref = Atomics.load(this.slots, s + SLOT_POSITION);
      const log = Atomics.load(this.slots, s + SLOT_LOG);
      if (ref === 0 || log < 0 || log >= this.logs) continue;
      const position = (ref & ~7) >>> 0;
      const offset = this.entryOf(log, position, key, length);
      if (offset >= 0) return this.answer(offset, log, position, length, stamps);
    }
    return null;
  }

  put(key: Buffer, length: number, entry: AnswerEntry): void {
    const encodings = entry.encodings ?? [];
    let size = ENTRY_HEADER + length;
    for (const e of encodings) size += 2 + e.length;
    size = align8(size);
    if (size > this.maxEntry) return;
    let position = Atomics.load(this.control, HEADS + this.log) >>> 0;
    // An entry never wraps around the end of the log: it starts the next lap instead.
    if ((position & (this.logBytes - 1)) + size > this.logBytes) position = (position + this.logBytes - (position & (this.logBytes - 1))) >>> 0;
    // The head moves first: a reader of what this entry overwrites sees it move and drops its copy.
    Atomics.store(this.control, HEADS + this.log, (position + size) | 0);
    const offset = this.log * this.logBytes + (position & (this.logBytes - 1));
    const { words, bytes } = this;
    const w = offset >>> 2;
    words[w] = size;
    words[w + 1] = position;
    words[w + 2] = entry.tag;
    words[w + 3] = entry.stamp;
    bytes[offset + 16] = length & 0xff;
    bytes[offset + 17] = length >>> 8;
    bytes[offset + 18] = encodings.length & 0xff;
    bytes[offset + 19] = encodings.length >>> 8;
    key.copy(bytes, offset + ENTRY_HEADER, 0, length);
    let at = offset + ENTRY_HEADER + length;
    for (const e of encodings) {
      bytes[at] = e.length & 0xff;
      bytes[at + 1] = e.length >>> 8;
      e.copy(bytes, at + 2);
      at += 2 + e.length;
    }
    const hash = hashKey(key, length);
    const slot = this.slotFor(hash);
    Atomics.store(this.slots, slot + SLOT_LOG, this.log);
    // Positions are 8-aligned, so the low bit marks a used slot (a position may be 0).
    Atomics.store(this.slots, slot + SLOT_POSITION, position | 1);
    Atomics.store(this.slots, slot + SLOT_HASH, hash);
  }

  /** Where the live entry at `position` of `log` starts in `bytes`, if it is the one for this key; else -1. */
  private entryOf(log: number, position: number, key: Buffer, length: number): number {
    if (this.overwritten(log, position)) return -1;
    const start = log * this.logBytes;
    const offset = start + (position & (this.logBytes - 1));
    const { words, bytes } = this;
    const w = offset >>> 2;
    const size = words[w];
    if (words[w + 1] !== position || size > this.maxEntry || offset + size > start + this.logBytes) return -1;
    if ((bytes[offset + 16] | (bytes[offset + 17] << 8)) !== length || ENTRY_HEADER + length > size) return -1;
    const keyStart = offset + ENTRY_HEADER;
    for (let i = 0; i < length; i++) if (bytes[keyStart + i] !== key[i]) return -1;
    return offset;
  }

  /** The answer of the entry at `offset` (its key checked), or null when stale or overwritten meanwhile. */
  private answer(offset: number, log: number, position: number, keyLength: number, stamps: Uint32Array): Buffer | typeof NOT_OURS | null {
    const { words, bytes } = this;
    const w = offset >>> 2;
    const end = offset + Math.min(words[w], this.maxEntry);
    if (stamps[words[w + 2] & (STAMP_SLOTS - 1)] !== words[w + 3]) return null;
    const count = bytes[offset + 18] | (bytes[offset + 19] << 8);
    if (count === 0) return this.overwritten(log, position) ? null : NOT_OURS;
    let at = offset + ENTRY_HEADER + keyLength;
    for (let skip = this.turn++ % count; skip > 0 && at + 2 <= end; skip--) at += 2 + (bytes[at] | (bytes[at + 1] << 8));
    if (at + 2 > end) return null;
    const answerLength = bytes[at] | (bytes[at + 1] << 8);
    if (at + 2 + answerLength > end) return null;
    const out = Buffer.allocUnsafe(answerLength);
    bytes.copy(out, 0, at + 2, at + 2 + answerLength);
    return this.overwritten(log, position) ? null : out;
  }

  /** Where a new entry of this hash goes (the slot's first word): the slot with the same hash, else an empty one, else the oldest. */
  private slotFor(hash: number): number {
    const bucket = (hash & (this.slotCount - 1) & ~(BUCKET - 1)) * SLOT_WORDS;
    let chosen = bucket;
    let chosenAge = -1;
    for (let s = bucket; s < bucket + BUCKET * SLOT_WORDS; s += SLOT_WORDS) {
      const ref = Atomics.load(this.slots, s + SLOT_POSITION);
      if (ref !== 0 && Atomics.load(this.slots, s + SLOT_HASH) === hash) return s;
      const log = Atomics.load(this.slots, s + SLOT_LOG);
      // An empty slot, or one naming a log that is not there, counts as older than any entry.
      const age = ref === 0 || log < 0 || log >= this.logs ? 2 ** 32 : this.age(log, (ref & ~7) >>> 0);
      if (age > chosenAge) {
        chosen = s;
        chosenAge = age;
      }
    }
    return chosen;
  }

  /** Bytes written to `log` since `position`. */
  private age(log: number, position: number): number {
    return ((Atomics.load(this.control, HEADS + log) >>> 0) - position) >>> 0;
  }

  /** Whether `log`'s writer has moved a whole log's length past `position`: its bytes may be another entry's now. */
  private overwritten(log: number, position: number): boolean {
    return this.age(log, position) > this.logBytes;
  }
}
