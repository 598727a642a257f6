// Reading the topology from files, in the topology worker: the topology file (ours, with
// its journal and cached image, or an unmodified BOSH records.json) and the alias files.
// It watches them (directory watches, so rename-over and delete/re-create work), reads a
// replaced file whole and a grown journal from where it stopped, and hands the result to
// the state. Nothing read from disk is trusted: a file that cannot be read, is over the
// size limit or does not parse never replaces what is in service; a cached image is served
// only once its checksum holds; a journal is applied line by line up to the first line
// that fails its checks, and what was applied before it stays. Each failure is logged,
// counted and reported, and no input makes an exception escape.
import { closeSync, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { FSWatcher } from 'chokidar';
import type { Logger } from '../log.ts';
import { parseStructured, readTextFile } from '../util/structured-file.ts';
import { watchPaths } from '../util/watch.ts';
import { ImageBuilder } from '../image/builder.ts';
import { readImageCache, snapshotHead, writeImageCache } from '../image/cache.ts';
import { TopologyImage } from '../image/image.ts';
import { journalPath, readJournal, type JournalEntry } from './journal.ts';
import type { FileMark, JournalTail, SourcePosition, TopologyMeta } from './protocol.ts';
import { readAliases, readTopology } from './reader.ts';
import type { TopologyState } from './state.ts';
import type { AliasMap } from '../image/instance.ts';
import { mergeAliases } from '../image/view.ts';
import { SYNC_SOURCE } from './snapshot.ts';

const ALIAS_FILE = /\.(ya?ml|json)$/;

export interface FileSourceOptions {
  file: string;
  aliasesDir: string;
  state: TopologyState;
  logger: Logger;
  /** The largest topology file, journal or image cache read, bytes (topology.max_file_bytes). */
  maxFileBytes?: number;
  /**
   * Running on the DNS thread (a small topology, host.ts): a file or journal larger than this
   * is not read here; `onOversize` is called instead, and the topology worker reads it.
   */
  inline?: { maxBytes: number; onOversize: () => void };
  /** This node syncs: a cached image of its own snapshot that fails is rewritten. */
  rewritesCache?: boolean;
  /** Quiet period after a file event before reading, ms (collapses bursts of writes). */
  debounceMs?: number;
  /** Longest a stream of events may hold a read back, ms. */
  maxDelayMs?: number;
  /** The topology file was replaced by someone other than our syncer (while it owned it). */
  onForeignWrite?: (topology: TopologyMeta) => void;
  /** After every read, good or rejected (the worker reports its status). */
  onRead?: () => void;
}

export interface SourceCounts {
  reloads: number;
  reloadFailures: number;
  /** Cached images that failed verification. */
  cacheRejects: number;
  /** Journals whose reading stopped at a corrupt line. */
  journalErrors: number;
}

type Opened =
  | { ok: true; bytes: Buffer; mark: FileMark; ino: number; size: number }
  /** `oversize`: too big to read on the DNS thread; handed to the topology worker (not an error). */
  | { ok: false; missing: boolean; error: string; oversize?: boolean };

function markOf(fd: number): FileMark {
  const s = fstatSync(fd, { bigint: true });
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

export class FileSource {
  private readonly file: string;
  private readonly aliasesDir: string;
  private readonly maxFileBytes: number;
  private configAliases: AliasMap = new Map();
  private fileAliases: AliasMap = new Map();
  private tail: JournalTail | null = null;
  /** The snapshot in service (null: none, or our syncer's own). */
  private mark: FileMark | null = null;
  /** The merged aliases last handed to the state, as text (unchanged aliases keep the cache warm). */
  private aliasesKey = '';
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private firstPending = 0;
  private pending = new Set<'topology' | 'journal' | 'aliases'>();
  /** The topology file as last read: metadata the syncer's ownership check looks at. */
  topology: TopologyMeta | null = null;
  /** Why the last read of the topology file was rejected (the last good topology stays). */
  lastError: string | null = null;
  /** Why the cached image was not served, when it failed verification. */
  cacheError: string | null = null;
  /** Why reading the journal stopped (a corrupt line), until a new snapshot or journal is read. */
  journalError: string | null = null;
  /** Set while our syncer writes the file: the snapshot it wrote last, which is not read back. */
  ownSnapshot: (() => { cluster: string; version: number | null }) | null = null;
  readonly counts: SourceCounts = { reloads: 0, reloadFailures: 0, cacheRejects: 0, journalErrors: 0 };

  constructor(private readonly options: FileSourceOptions) {
    this.file = resolve(options.file);
    this.aliasesDir = resolve(options.aliasesDir);
    this.maxFileBytes = options.maxFileBytes ?? Number.MAX_SAFE_INTEGER;
  }

  /**
   * Watches, then reads the aliases and the file (a missing file is not an error: the
   * syncer may write it). Watching first means an edit made while loading is not missed.
   * `resume`: where a worker that died stood; its topology is already in service, so the
   * files are read again only if they changed since.
   */
  async start(resume?: SourcePosition): Promise<void> {
    const roots = [...new Set([dirname(this.file), dirname(this.aliasesDir)])];
    const journal = journalPath(this.file);
    const kind = (p: string): 'topology' | 'journal' | 'aliases' | null => {
      if (p === this.file) return 'topology';
      if (p === journal) return 'journal';
      if (p === this.aliasesDir || (dirname(p) === this.aliasesDir && ALIAS_FILE.test(p))) return 'aliases';
      return null;
    };
    this.watcher = await watchPaths(roots, {
      chokidar: {
        depth: 1,
        ignored: (path: string) => {
          const p = resolve(path);
          return !roots.includes(p) && kind(p) === null;
        },
      },
      onChange: (path) => {
        const what = kind(resolve(path));
        if (what) this.schedule(what);
      },
      onError: (err) => this.options.logger.error({ err: err.message }, 'watching the topology files failed; changes may be missed until restart'),
    });
    this.configAliases = this.readAliasDir();
    if (resume && this.options.state.current) {
      this.topology = resume.topology;
      this.fileAliases = resume.topology?.aliases ?? new Map<string, string[]>();
      this.aliasesKey = JSON.stringify([...mergeAliases(this.configAliases, this.fileAliases)]);
      this.mark = resume.mark;
      this.tail = resume.tail;
      // Our syncer's own file is not read back; it writes it again once it is on the database.
      if (resume.owned) return;
      this.guarded('reading the topology file', () => this.load());
      return;
    }
    this.guarded('reading the topology file', () => this.load());
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.watcher?.close();
  }

  /** SIGHUP: re-read the alias files and the topology file now. */
  reload(): void {
    this.guarded('reading the alias files', () => {
      this.configAliases = this.readAliasDir();
    });
    this.guarded('reading the topology file', () => this.load());
  }

  position(): SourcePosition {
    return { mark: this.mark, topology: this.topology, tail: this.tail, owned: this.ownSnapshot !== null };
  }

  private schedule(what: 'topology' | 'journal' | 'aliases'): void {
    if (this.pending.size === 0) this.firstPending = Date.now();
    this.pending.add(what);
    if (this.timer) clearTimeout(this.timer);
    const waited = Date.now() - this.firstPending;
    const delay = Math.min(this.options.debounceMs ?? 50, Math.max(0, (this.options.maxDelayMs ?? 1000) - waited));
    this.timer = setTimeout(() => {
      this.timer = null;
      const pending = this.pending;
      this.pending = new Set();
      if (pending.has('aliases')) this.guarded('reading the alias files', () => this.reloadAliases());
      if (pending.has('topology')) this.guarded('reading the topology file', () => this.topologyChanged());
      else if (pending.has('journal')) this.guarded('reading the topology journal', () => this.followJournal());
    }, delay);
  }

  /**
   * Runs one read. Every input the readers can meet is handled where it is read; this is
   * the last line, so that even a reader's bug fails that one read and never the worker.
   */
  private guarded(what: string, read: () => void): void {
    try {
      read();
    } catch (err) {
      this.reject(`${what} failed unexpectedly: ${(err as Error).message}`);
    }
  }

  private reloadAliases(): void {
    this.configAliases = this.readAliasDir();
    this.handOverAliases();
  }

  private handOverAliases(): void {
    const aliases = this.changedAliases();
    if (aliases) this.options.state.setAliases(aliases);
  }

  /** The merged aliases if they differ from those last handed over, else undefined. */
  private changedAliases(): AliasMap | undefined {
    const aliases = mergeAliases(this.configAliases, this.fileAliases);
    const key = JSON.stringify([...aliases]);
    if (key === this.aliasesKey && this.options.state.current) return undefined;
    this.aliasesKey = key;
    return aliases;
  }

  private topologyChanged(): void {
    if (this.ownSnapshot) {
      // While our syncer owns the file, its own snapshots are not read back; anything else is a foreign write.
      const head = snapshotHead(this.file);
      const own = this.ownSnapshot();
      if (!head || (head.source === SYNC_SOURCE && head.cluster === own.cluster && head.version === own.version)) return;
      const opened = this.openTopology();
      if (!opened) return;
      const read = readTopology(opened.bytes, () => {
        // A foreign write is only reported (its head); its rows are not served.
      });
      if (!read.ok) return;
      this.topology = read.topology;
      this.options.onForeignWrite?.(read.topology);
      return;
    }
    this.load();
  }

  /**
   * Reads the topology file whole (or its verified cached image) with its journal, and
   * puts both in service as one step. A file that has not changed since it was read is
   * not read again: only its journal is followed.
   */
  private load(): void {
    const { state, logger } = this.options;
    const opened = this.openTopology();
    if (!opened) {
      // No file yet (a syncing node's first start): the aliases go to the state now, so the
      // topology the syncer puts in service later is served with them.
      if (!state.current) this.handOverAliases();
      return;
    }
    if (opened.mark === this.mark && state.current) {
      this.followJournal();
      return;
    }
    let image: TopologyImage;
    let topology: TopologyMeta;
    let from: string;
    const cached = readImageCache(this.file, this.maxFileBytes);
    if (cached.kind === 'image') {
      // Our own snapshot, unchanged since its image was cached: the parse is skipped.
      image = cached.image;
      topology = { version: image.version, aliases: new Map(), ptrRecords: null, generatedAt: null, source: cached.head.source, cluster: cached.head.cluster };
      from = 'image cache';
      this.cacheError = null;
    } else {
      // Shown until the next read of a cache: a stale one clears it.
      this.cacheError = null;
      if (cached.kind === 'corrupt') this.cacheCorrupt(cached.reason);
      const parsed = this.parse(opened.bytes);
      if (!parsed) return;
      ({ image, topology } = parsed);
      from = 'file';
      if (cached.kind === 'corrupt' && this.options.rewritesCache && topology.source === SYNC_SOURCE) this.rewriteCache(image, opened.bytes.length);
    }
    this.mark = opened.mark;
    this.topology = topology;
    this.fileAliases = topology.aliases;
    this.lastError = null;
    this.journalError = null;
    this.tail = null;
    const changes = this.readNewJournal(topology);
    const view = state.replace(image.buffer as SharedArrayBuffer, this.changedAliases(), changes);
    this.counts.reloads++;
    logger.info({ version: view.version, snapshot: topology.version, records: view.recordCount, from }, 'topology in service');
    this.options.onRead?.();
  }

  /** The snapshot's rows compiled into an image; null (and the file rejected) when it does not read. */
  private parse(bytes: Buffer): { image: TopologyImage; topology: TopologyMeta } | null {
    const { state, logger } = this.options;
    // Rows go straight into the image; the file never exists as one object graph.
    const builder = new ImageBuilder(Math.ceil(bytes.length / 120));
    const skipped: string[] = [];
    const read = readTopology(bytes, (i) => {
      const reason = builder.add(i);
      if (reason !== null) skipped.push(`instance ${i.id}: ${reason}; skipped`);
    });
    if (!read.ok) {
      this.reject(`topology file ${this.file} rejected: ${read.error}`);
      return null;
    }
    skipped.unshift(...read.warnings);
    for (const warning of skipped.slice(0, 20)) logger.warn({ file: this.file }, `topology row skipped: ${warning}`);
    if (skipped.length > 20) logger.warn({ file: this.file, skipped: skipped.length }, 'more topology rows skipped');
    const buffer = builder.finish({ version: read.topology.version, ptrRecords: read.topology.ptrRecords }, state.allocate);
    return { image: new TopologyImage(buffer), topology: read.topology };
  }

  private cacheCorrupt(reason: string): void {
    const path = `${this.file}.image`;
    this.cacheError = `cached image ${path} rejected: ${reason}; served from the snapshot and journal instead`;
    this.counts.cacheRejects++;
    this.options.logger.error({ file: path, reason }, 'the cached topology image failed verification; it is never served, the snapshot is read instead');
  }

  private rewriteCache(image: TopologyImage, snapshotBytes: number): void {
    try {
      writeImageCache(this.file, image, snapshotBytes);
      this.options.logger.info({ file: `${this.file}.image` }, 'rewrote the cached topology image from the snapshot');
    } catch (err) {
      this.options.logger.warn({ file: `${this.file}.image`, err: (err as Error).message }, 'cannot rewrite the cached topology image');
    }
  }

  /**
   * Reads a journal from its header, for the snapshot `topology`: its verified changes,
   * or none when there is no journal, it continues another snapshot, or it fails at once.
   */
  private readNewJournal(topology: TopologyMeta): JournalEntry[] {
    const opened = this.openJournal();
    if (!opened) {
      this.tail = null;
      return [];
    }
    this.tail = { ino: opened.ino, offset: 0, cursor: null, state: 'following' };
    return this.readTail(this.tail, opened.bytes, topology);
  }

  /** Reads journal bytes from where `tail` (this.tail) stands; returns the changes verified. */
  private readTail(tail: JournalTail, bytes: Buffer, topology: TopologyMeta): JournalEntry[] {
    const read = readJournal(bytes, tail.cursor, tail.offset);
    const header = read.cursor?.header;
    if (tail.cursor === null && header && (header.base !== topology.version || header.cluster !== topology.cluster)) {
      // Written for another snapshot (a compaction in progress): the snapshot holds its changes or its successor will.
      tail.state = 'foreign';
      return [];
    }
    tail.cursor = read.cursor;
    tail.offset += read.consumed;
    if (read.error) this.journalFailed(read.error, tail.cursor?.n ?? 0);
    return read.entries;
  }

  /** Reading the journal stops here until a new snapshot or journal is written. */
  private journalFailed(reason: string, applied: number): void {
    if (this.tail) this.tail.state = 'stuck';
    this.journalError = `${reason}; the changes before it stay in service, nothing after it is applied until a new snapshot or journal is written`;
    this.counts.journalErrors++;
    this.options.logger.error({ file: journalPath(this.file), applied, reason }, 'topology journal rejected; stopped applying it there');
    this.options.onRead?.();
  }

  /** Applies what the journal gained since the last read; a new journal (same snapshot) is read from its header. */
  private followJournal(): void {
    const { state } = this.options;
    const view = state.current;
    if (this.ownSnapshot || !view || !this.topology) return;
    const tail = this.tail;
    const continues = (ino: number, size: number) => tail !== null && tail.ino === ino && size >= tail.offset;
    // The same journal is read on from where it stopped (not at all once it stopped for good); a new one whole.
    const opened = this.openJournal((ino, size) => (!continues(ino, size) ? 0 : tail?.state === 'following' ? tail.offset : size));
    if (!opened) {
      this.tail = null;
      return;
    }
    let entries: JournalEntry[];
    if (continues(opened.ino, opened.size)) {
      if (tail?.state !== 'following') return;
      entries = this.readTail(tail, opened.bytes, this.topology);
    } else {
      // A new journal beside the same snapshot. If one of it was applied already, what this
      // one repeats is in service: only what is newer is applied.
      const applied = tail !== null && tail.cursor !== null && tail.state !== 'foreign';
      this.journalError = null;
      this.tail = { ino: opened.ino, offset: 0, cursor: null, state: 'following' };
      entries = this.readTail(this.tail, opened.bytes, this.topology).filter((e) => !applied || e.version > view.version);
    }
    for (const entry of entries) state.apply(entry.version, entry.removes, entry.adds);
    this.options.onRead?.();
  }

  /**
   * A file's bytes from `from(ino, size)` on (default: all) and its identity; `missing` when
   * it does not exist, `error` when it cannot be read or is over the size limit.
   */
  private open(path: string, what: string, from: (ino: number, size: number) => number = () => 0): Opened {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return { ok: false, missing: code === 'ENOENT', error: `cannot read ${what} ${path}: ${code ?? (err as Error).message}` };
    }
    try {
      const { size, ino } = fstatSync(fd);
      if (size > this.maxFileBytes) return { ok: false, missing: false, error: `${what} ${path} is ${size} bytes, over topology.max_file_bytes (${this.maxFileBytes})` };
      const { inline } = this.options;
      if (inline && size > inline.maxBytes) {
        inline.onOversize();
        return { ok: false, missing: false, error: '', oversize: true };
      }
      const start = from(ino, size);
      const bytes = Buffer.allocUnsafe(size - start);
      let read = 0;
      for (let n = 1; read < bytes.length && n > 0; read += n) n = readSync(fd, bytes, read, bytes.length - read, start + read);
      return { ok: true, bytes: bytes.subarray(0, read), mark: markOf(fd), ino, size };
    } catch (err) {
      return { ok: false, missing: false, error: `cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    } finally {
      closeSync(fd);
    }
  }

  /** The topology file's bytes; null when it cannot be had (rejected, unless it is simply not written yet). */
  private openTopology(): Extract<Opened, { ok: true }> | null {
    const opened = this.open(this.file, 'topology file');
    if (opened.ok) return opened;
    // No file yet is the normal start of a syncing node; once a topology is in service, a missing file is an error.
    if (!opened.oversize && !(opened.missing && !this.options.state.current)) this.reject(opened.error);
    return null;
  }

  /** The journal's bytes (from `from`); null when there is none, or it cannot be read (the reading stops, reported). */
  private openJournal(from?: (ino: number, size: number) => number): Extract<Opened, { ok: true }> | null {
    const opened = this.open(journalPath(this.file), 'topology journal', from);
    if (opened.ok) return opened;
    if (!opened.missing && !opened.oversize) this.journalFailed(opened.error, 0);
    return null;
  }

  private readAliasDir(): AliasMap {
    const { logger } = this.options;
    let files: string[];
    try {
      files = readdirSync(this.aliasesDir).filter((f) => ALIAS_FILE.test(f)).sort();
    } catch {
      files = [];
    }
    const aliases: AliasMap = new Map();
    for (const name of files) {
      const path = join(this.aliasesDir, name);
      try {
        const doc = parseStructured(name, readTextFile(path));
        const warnings: string[] = [];
        readAliases(doc, warnings, aliases);
        for (const warning of warnings) logger.warn({ file: path }, warning);
      } catch (err) {
        this.counts.reloadFailures++;
        logger.error({ file: path, err: (err as Error).message }, `alias file ${basename(path)} rejected; its aliases are not served`);
      }
    }
    return aliases;
  }

  private reject(reason: string): void {
    this.lastError = reason;
    this.counts.reloadFailures++;
    this.options.logger.error({ keptVersion: this.options.state.current?.version ?? null }, `${reason}; keeping the last good topology`);
    this.options.onRead?.();
  }
}
