// The messages between the DNS thread (TopologyStore) and the topology worker. Images
// travel as SharedArrayBuffers (shared, never copied); deltas carry only the instances
// that changed, so a change costs O(change) bytes between threads whatever the size.
import type { MessagePort } from 'node:worker_threads';
import type { SyncStatus } from '../presence/syncer.ts';
import type { SourcePosition } from './file-source.ts';
import type { CatchUp } from './follower.ts';
import type { AliasMap } from './types.ts';
import type { TopologyDelta } from './view.ts';

export interface SyncSettings {
  intervalMs: number;
  ttlMs: number;
  maxDropFraction: number;
  guardHold: number;
  /** A PostgreSQL URL, or the embedded database's worker reached through a MessagePort. */
  database: { url: string } | { port: MessagePort };
}

/** The worker's `workerData`. */
export interface TopologyWorkerOptions {
  file: string;
  aliasesDir: string;
  domains: string[];
  logLevel: string;
  /** topology.max_file_bytes. */
  maxFileBytes: number;
  /** The syncer: null for a DNS-only daemon fed a file. */
  sync: SyncSettings | null;
  /** A restarted worker's start: the view the DNS thread answers from, and where reading the files stood. */
  resume: { view: CatchUp; source: SourcePosition | null } | null;
}

export type ToMain =
  /**
   * A new base image, and the deltas that follow it (a journal read with its snapshot),
   * put in service together. `change`: the cache tags of what differs from the view
   * before (cache-tags.ts; empty for a compaction), or 'replaced' when that is too much to say.
   */
  | { type: 'image'; buffer: SharedArrayBuffer; bufferId: number; seq: number; deltas: TopologyDelta[]; aliases: AliasMap; change: 'replaced' | Uint32Array }
  | { type: 'delta'; delta: TopologyDelta }
  | { type: 'aliases'; aliases: AliasMap }
  | { type: 'status'; status: WorkerStatus }
  /** The first read of the files is done (whatever it found). */
  | { type: 'started' };

export type ToWorker =
  | { type: 'reload' }
  | { type: 'release-guard' }
  /** No thread answers from this image buffer any more: it may be reused (image-pool.ts). */
  | { type: 'release'; bufferId: number }
  | { type: 'stop' };

export interface FileStatus {
  file: string;
  /** The topology in service came from a file or the database; null: nothing loaded yet. */
  version: number | null;
  records: number;
  /** Why the last load was rejected (the last good topology stays in service). */
  lastError: string | null;
  /** Set while the syncer will not write the file because someone else wrote it. */
  refused: string | null;
  /** The last write of the file failed (disk full, read-only): why. */
  writeError: string | null;
  /** The cached image failed verification when last read (the snapshot was served instead): why. */
  cacheError: string | null;
  /** Applying the journal stopped at a line that failed its checks: which and why (until a new snapshot or journal). */
  journalError: string | null;
}

export interface WorkerStatus {
  topology: FileStatus;
  sync: SyncStatus | null;
  /** Monotonic totals since the worker started. */
  counts: { reloads: number; reloadFailures: number; cacheRejects: number; journalErrors: number; writeFailures: number; compactions: number; guardTrips: number };
  /** Sync pass durations (s) since the last status message. */
  syncDurations: number[];
  /** Image buffers sent to the DNS thread and not yet released, and released ones kept for reuse. */
  imageBuffers: { inUse: number; spare: number };
  /** Where reading the files stands, for a restarted worker to go on from. */
  source: SourcePosition;
}
