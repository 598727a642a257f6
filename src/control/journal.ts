// The topology journal (`<file>.journal`): the changes appended after a snapshot, one JSON
// line each, so a change costs O(change) bytes on disk. Every line is verified before it is
// applied: it carries a CRC-32 of its own bytes and a line number, and its shape is checked
// strictly. A complete line that fails is corruption — a reader stops there and keeps what
// it has applied; only an incomplete last line is a torn append, to be read once complete.
//
// Format 2 (written):
//   {"journal":2,"base":<snapshot version>,"cluster":"<id>","crc":"<8 hex>"}
//   {"n":1,"v":<version after>,"rm":[<names>],"add":[<record_infos rows>],"crc":"<8 hex>"}
// The CRC covers the line's bytes before `,"crc"`; `n` counts lines from 1, so a line lost,
// repeated or moved is caught even when each line is whole. Format 1 (no `n`, no CRC) is
// still read, with the same shape checks.
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { writeFileAtomicSync } from '../util/atomic-file.ts';
import { MAX_NAME_LENGTH } from '../util/dns-name.ts';
import { MAX_JSON_DEPTH, nestedDeeper } from './json-scan.ts';
import { rowReader } from './reader.ts';
import { recordRow } from './snapshot.ts';
import { normalizeName, RECORD_KEYS, type Instance } from '../image/instance.ts';

export const journalPath = (file: string) => `${file}.journal`;

export const JOURNAL_FORMAT = 2;

export interface JournalEntry {
  /** The version after this change. */
  version: number;
  /** Instance names removed or replaced. */
  removes: string[];
  adds: Instance[];
}

export interface JournalHeader {
  format: 1 | 2;
  /** The snapshot version this journal continues; a journal with another base is stale. */
  base: number;
  cluster: string;
}

const hex = (text: string) => crc32(text).toString(16).padStart(8, '0');

/** A JSON object's text with its CRC appended as the last member, and a newline. */
function sealed(json: string): string {
  const body = json.slice(0, -1);
  return `${body},"crc":"${hex(body)}"}\n`;
}

const SEAL = /,"crc":"([0-9a-f]{8})"\}$/;

export function journalLine(n: number, entry: JournalEntry): string {
  return sealed(JSON.stringify({ n, v: entry.version, rm: entry.removes, add: entry.adds.map(recordRow) }));
}

export function journalHeaderLine(base: number, cluster: string): string {
  return sealed(JSON.stringify({ journal: JOURNAL_FORMAT, base, cluster }));
}

/** Appends changes to `<file>.journal`: O(change) bytes per change, flushed to disk each time. */
export class JournalWriter {
  private fd: number | null = null;
  private lines = 0;
  /** Bytes in the journal, header included. */
  bytes = 0;

  constructor(private readonly file: string) {}

  /** Starts a new, empty journal after a snapshot at `base` (replaces the old one atomically). */
  reset(base: number, cluster: string): void {
    this.close();
    const line = journalHeaderLine(base, cluster);
    writeFileAtomicSync(journalPath(this.file), [line]);
    this.fd = openSync(journalPath(this.file), 'a');
    this.bytes = Buffer.byteLength(line);
    this.lines = 0;
  }

  append(entry: JournalEntry): void {
    if (this.fd === null) throw new Error('journal not started');
    const bytes = Buffer.from(journalLine(this.lines + 1, entry));
    // A short write (disk full) leaves a torn last line; readers wait at it, and the writer
    // rewrites snapshot and journal whole at its next chance (state.ts).
    for (let written = 0; written < bytes.length;) written += writeSync(this.fd, bytes, written);
    fdatasyncSync(this.fd);
    this.lines++;
    this.bytes += bytes.length;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Where a reader stands in a journal: after its header and `n` lines, at `version`. */
export interface JournalCursor {
  header: JournalHeader;
  n: number;
  version: number;
}

export interface JournalRead {
  /** The cursor after the last verified line (null: the header itself is not read yet). */
  cursor: JournalCursor | null;
  entries: JournalEntry[];
  /** Bytes of verified lines read (where to resume). */
  consumed: number;
  /** A complete line failed its checks: why, naming the line. Nothing after it is read. */
  error: string | null;
}

class LineError extends Error {}

const isVersion = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The object a line holds after its seal is checked (format 2), or as it is (format 1). */
function lineObject(line: string, format: 1 | 2 | null): Record<string, unknown> {
  let text = line;
  if (format !== 1) {
    const seal = SEAL.exec(line);
    if (seal) {
      text = `${line.slice(0, seal.index)}}`;
      if (hex(line.slice(0, seal.index)) !== seal[1]) throw new LineError('its checksum does not match its bytes');
    } else if (format === 2) throw new LineError('it has no checksum');
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new LineError('it is not JSON');
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new LineError('it is not a JSON object');
  return doc as Record<string, unknown>;
}

function exactKeys(doc: Record<string, unknown>, keys: string[]): void {
  const have = Object.keys(doc);
  if (have.length !== keys.length || !keys.every((k) => k in doc)) throw new LineError(`its members are ${JSON.stringify(have)}, expected ${JSON.stringify(keys)}`);
}

function header(line: string): JournalHeader {
  const doc = lineObject(line, null);
  const format = doc.journal;
  if (format === 2 && !SEAL.test(line)) throw new LineError('it has no checksum');
  if (format !== 1 && format !== 2) throw new LineError(`it is not a journal header of a known format (journal: ${JSON.stringify(format)})`);
  exactKeys(doc, ['journal', 'base', 'cluster']);
  if (!isVersion(doc.base)) throw new LineError('its base is not a non-negative integer');
  if (typeof doc.cluster !== 'string') throw new LineError('its cluster is not a string');
  return { format, base: doc.base, cluster: doc.cluster };
}

const readRow = (() => {
  const read = rowReader([...RECORD_KEYS]);
  // RECORD_KEYS holds every required column: a reader of them always exists.
  if (typeof read === 'string') throw new Error(read);
  return read;
})();

function entry(line: string, cursor: JournalCursor): JournalEntry {
  const { format } = cursor.header;
  const doc = lineObject(line, format);
  exactKeys(doc, format === 2 ? ['n', 'v', 'rm', 'add'] : ['v', 'rm', 'add']);
  if (format === 2 && doc.n !== cursor.n + 1) throw new LineError(`its line number is ${JSON.stringify(doc.n)}, expected ${cursor.n + 1} (a line lost, repeated or moved)`);
  if (!isVersion(doc.v)) throw new LineError('its version is not a non-negative integer');
  if (doc.v < cursor.version) throw new LineError(`its version ${doc.v} is older than the one before it (${cursor.version})`);
  if (!Array.isArray(doc.rm) || !doc.rm.every((n) => typeof n === 'string' && n.length > 0 && n.length <= MAX_NAME_LENGTH)) {
    throw new LineError('its removals are not a list of instance names');
  }
  if (!Array.isArray(doc.add)) throw new LineError('its additions are not a list of rows');
  const adds = doc.add.map((row, i) => {
    const warnings: string[] = [];
    const instance = readRow(row, () => `add[${i}]`, warnings);
    if (!instance) throw new LineError(warnings[0] ?? `add[${i}] is not a record row`);
    return instance;
  });
  return { version: doc.v, removes: (doc.rm as string[]).map(normalizeName), adds };
}

/**
 * Reads journal bytes from where `cursor` stands (null: from the header). Reading stops
 * at an incomplete last line (a torn append, read again once complete) or at the first
 * complete line that fails (`error`: corruption; what came before it stands).
 */
export function readJournal(bytes: Uint8Array, cursor: JournalCursor | null, startOffset = 0): JournalRead {
  const out: JournalRead = { cursor, entries: [], consumed: 0, error: null };
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let offset = 0, end = text.indexOf(0x0a); end !== -1; offset = end + 1, end = text.indexOf(0x0a, offset)) {
    const line = text.toString('utf8', offset, end);
    try {
      if (nestedDeeper(text, offset, end)) throw new LineError(`it nests deeper than ${MAX_JSON_DEPTH} levels`);
      if (out.cursor === null) {
        const h = header(line);
        out.cursor = { header: h, n: 0, version: h.base };
      } else {
        const e = entry(line, out.cursor);
        out.entries.push(e);
        out.cursor = { header: out.cursor.header, n: out.cursor.n + 1, version: e.version };
      }
    } catch (err) {
      if (!(err instanceof LineError)) throw err;
      const which = out.cursor === null ? 'header' : `line ${out.cursor.n + 1}`;
      out.error = `journal ${which} (byte ${startOffset + offset}) is corrupt: ${err.message}`;
      return out;
    }
    out.consumed = end + 1;
  }
  return out;
}
