// The messages between the DNS thread (TopologyStore) and the topology worker. Images
// travel as SharedArrayBuffers (shared, never copied); deltas carry only the instances
// that changed, so a change costs O(change) bytes between threads whatever the size.
import type { MessagePort } from 'node:worker_threads';
import type { AliasMap, Topology } from '../image/instance.ts';
import type { JournalCursor } from './journal.ts';
import type { TopologyDelta } from '../image/view.ts';
import type { FanoutSettings, FanoutStatus } from '../fanout/index.ts';

export interface SyncSettings {
  intervalMs: number;
  ttlMs: number;
  maxDropFraction: number;
  guardHold: number;
  /** A PostgreSQL URL, or the embedded database's worker reached through a MessagePort. */
  database: { url: string } | { port: MessagePort };
  /** The fan-out over NATS (sync.nats_url), or null: the syncer reads the database. */
  fanout: FanoutSettings | null;
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

/** The messages that change the view. */
export type ViewMessage = Extract<ToMain, { type: 'image' | 'delta' | 'aliases' }>;

/** Everything a new follower of the view needs to reach the same view: the image and what came after it. */
export interface CatchUp {
  buffer: SharedArrayBuffer;
  bufferId: number;
  seq: number;
  aliases: AliasMap;
  deltas: TopologyDelta[];
}

export type ToWorker =
  | { type: 'reload' }
  | { type: 'release-guard' }
  /** No thread answers from this image buffer any more: it may be reused (image-pool.ts). */
  | { type: 'release'; bufferId: number }
  | { type: 'stop' };

export interface SyncStatus {
  /** True while the last successful sync is older than three intervals. */
  stale: boolean;
  staleSeconds: number;
  revision: number | null;
  /** A snapshot held back by the guard: the cells it would drop. */
  holding: string[];
  /** Why the syncer writes nothing (the topology file belongs to someone else), or null. */
  refused: string | null;
  /** null until the first pass. */
  dbUp: boolean | null;
  /** With the fan-out: where the changes come from now, and the publisher's state on this node. */
  fanout: FanoutStatus | null;
}

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

/** A topology file's metadata: what it says besides its instances. */
export type TopologyMeta = Omit<Topology, 'instances'>;

/** Which file was read: a file replaced (or rewritten in place) since has another mark. */
export type FileMark = string;

/** Where reading the journal stands. */
export interface JournalTail {
  ino: number;
  /** Bytes verified and applied (or skipped) so far. */
  offset: number;
  /** Null until the header line is read. */
  cursor: JournalCursor | null;
  /** 'stuck': a complete line failed; nothing more is read from this journal. 'foreign': it continues another snapshot. */
  state: 'following' | 'stuck' | 'foreign';
}

/** What a restarted worker needs to go on where the last one stopped, without reading the files again. */
export interface SourcePosition {
  mark: FileMark | null;
  topology: TopologyMeta | null;
  tail: JournalTail | null;
  /** Our syncer was writing the file: it is not read back. */
  owned: boolean;
}
