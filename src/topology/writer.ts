// The topology file on disk, as the syncer writes it (DESIGN §3.2): a JSON snapshot in
// BOSH's columnar records.json shape with our extra columns and an ownership mark, a
// journal of changes appended beside it (`<file>.journal`, one JSON line per delta), and
// a cached binary image (`<file>.image`) that lets a restart skip parsing the snapshot.
// Snapshots are written atomically (temp file, fsync, rename, fsync the directory) in
// chunks, so even 600 k records never become one giant string. Runs on the control plane
// (the topology worker), where blocking file calls stall nothing that answers DNS.
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { writeFileAtomicSync } from '../util/atomic-file.ts';
import { RECORD_KEYS, type Instance } from './types.ts';

/** The `source` our syncer writes: a file without it (or with another) is not ours to replace. */
export const SYNC_SOURCE = 'presence-dns sync';


export const journalPath = (file: string) => `${file}.journal`;
export const imageCachePath = (file: string) => `${file}.image`;

export interface SnapshotMeta {
  /** The revision the records reflect; read back as the topology's version. */
  version: number;
  /** The id of the presence database the records came from (`presence_cluster`). */
  cluster: string;
}

// BOSH writes numeric ids as strings; we do too so its tooling reads our files.
const idText = (n: number | null) => (n === null ? null : String(n));

/** One record as a `record_infos` row in RECORD_KEYS order. */
export function recordRow(i: Instance): unknown[] {
  return [
    i.id, idText(i.numId), i.group, i.groupIds.map(String), i.az, idText(i.azId), i.network, idText(i.networkId),
    i.deployment, i.ip, i.domain, i.agentId, i.index, i.health, i.cellId, i.ports,
  ];
}

/** The snapshot's text in chunks; `version` first, so a reader can check it without a full parse. */
export function* snapshotChunks(meta: SnapshotMeta, records: Iterable<Instance>, generatedAt = new Date()): Generator<string> {
  yield `{"version":${meta.version},"source":${JSON.stringify(SYNC_SOURCE)},"cluster":${JSON.stringify(meta.cluster)},`
    + `"generated_at":${JSON.stringify(generatedAt.toISOString())},"record_keys":${JSON.stringify(RECORD_KEYS)},"record_infos":[`;
  let batch: string[] = [];
  let first = true;
  for (const r of records) {
    batch.push(JSON.stringify(recordRow(r)));
    if (batch.length === 2000) {
      yield (first ? '' : ',') + batch.join(',');
      first = false;
      batch = [];
    }
  }
  if (batch.length) yield (first ? '' : ',') + batch.join(',');
  yield ']}';
}

export interface JournalEntry {
  /** The version after this change. */
  version: number;
  /** Instance names removed or replaced. */
  removes: string[];
  adds: Instance[];
}

export interface JournalHeader {
  journal: 1;
  /** The snapshot version this journal continues; a journal with another base is stale. */
  base: number;
  cluster: string;
}

export function journalLine(entry: JournalEntry): string {
  return `${JSON.stringify({ v: entry.version, rm: entry.removes, add: entry.adds.map(recordRow) })}\n`;
}

/** Appends changes to `<file>.journal`: O(change) bytes per change, flushed to disk each time. */
export class JournalWriter {
  private fd: number | null = null;
  /** Bytes in the journal, header included. */
  bytes = 0;

  constructor(private readonly file: string) {}

  /** Starts a new, empty journal after a snapshot at `header.base` (replaces the old one atomically). */
  reset(header: Omit<JournalHeader, 'journal'>): void {
    this.close();
    const line = `${JSON.stringify({ journal: 1, ...header })}\n`;
    writeFileAtomicSync(journalPath(this.file), [line]);
    this.fd = openSync(journalPath(this.file), 'a');
    this.bytes = Buffer.byteLength(line);
  }

  append(entry: JournalEntry): void {
    if (this.fd === null) throw new Error('journal not started');
    const bytes = Buffer.from(journalLine(entry));
    // A short write (disk full) leaves a torn last line; readers stop at it, and the next
    // compaction rewrites the journal whole.
    for (let written = 0; written < bytes.length; ) written += writeSync(this.fd, bytes, written);
    fdatasyncSync(this.fd);
    this.bytes += bytes.length;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
