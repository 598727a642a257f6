// Reading the topology from files, in the topology worker: the topology file (ours, with
// its journal and cached image, or an unmodified BOSH records.json) and the alias files.
// It watches them (directory watches, so rename-over and delete/re-create work), reads a
// replaced file whole and a grown journal from where it stopped, and hands the result to
// the state. A file that cannot be read or parsed never replaces what is in service; the
// failure is logged, counted and reported.
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { FSWatcher } from 'chokidar';
import type { Logger } from '../log.ts';
import { parseStructured } from '../util/structured-file.ts';
import { watchPaths } from '../util/watch.ts';
import { ImageBuilder } from './image-builder.ts';
import { readImageCache, snapshotHead } from './image-cache.ts';
import { parseJournal, readAliases, readTopology } from './reader.ts';
import type { TopologyState } from './state.ts';
import type { AliasMap, Topology } from './types.ts';
import { mergeAliases } from './view.ts';
import { journalPath, SYNC_SOURCE } from './writer.ts';

const ALIAS_FILE = /\.(ya?ml|json)$/;

export interface FileSourceOptions {
  file: string;
  aliasesDir: string;
  state: TopologyState;
  logger: Logger;
  /** Quiet period after a file event before reading, ms (collapses bursts of writes). */
  debounceMs?: number;
  /** Longest a stream of events may hold a read back, ms. */
  maxDelayMs?: number;
  /** The topology file was replaced by someone other than our syncer (while it owned it). */
  onForeignWrite?: (topology: Omit<Topology, 'instances'>) => void;
  /** After every read, good or rejected (the worker reports its status). */
  onRead?: () => void;
}

export interface SourceCounts {
  reloads: number;
  reloadFailures: number;
}

/** Where the journal tail stands: its file identity and how far it has been read. */
interface JournalTail {
  ino: number;
  offset: number;
}

export class FileSource {
  private readonly file: string;
  private readonly aliasesDir: string;
  private configAliases: AliasMap = new Map();
  private fileAliases: AliasMap = new Map();
  private tail: JournalTail | null = null;
  /** The merged aliases last handed to the state, as text (unchanged aliases keep the cache warm). */
  private aliasesKey = '';
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private firstPending = 0;
  private pending = new Set<'topology' | 'journal' | 'aliases'>();
  /** The topology file as last read: metadata the syncer's ownership check looks at. */
  topology: Omit<Topology, 'instances'> | null = null;
  lastError: string | null = null;
  /** Set while our syncer writes the file: the snapshot it wrote last, which is not read back. */
  ownSnapshot: (() => { cluster: string; version: number | null }) | null = null;
  readonly counts: SourceCounts = { reloads: 0, reloadFailures: 0 };

  constructor(private readonly options: FileSourceOptions) {
    this.file = resolve(options.file);
    this.aliasesDir = resolve(options.aliasesDir);
  }

  /**
   * Watches, then reads the aliases and the file (a missing file is not an error: the
   * syncer may write it). Watching first means an edit made while loading is not missed.
   */
  async start(): Promise<void> {
    const roots = [...new Set([dirname(this.file), dirname(this.aliasesDir)])];
    const journal = journalPath(this.file);
    const kind = (p: string): 'topology' | 'journal' | 'aliases' | null => {
      if (p === this.file) return 'topology';
      if (p === journal) return 'journal';
      if (p === this.aliasesDir || (dirname(p) === this.aliasesDir && ALIAS_FILE.test(p))) return 'aliases';
      return null;
    };
    this.watcher = await watchPaths(roots, {
      chokidar: { depth: 1, ignored: (path: string) => { const p = resolve(path); return !roots.includes(p) && kind(p) === null; } },
      onChange: (path) => {
        const what = kind(resolve(path));
        if (what) this.schedule(what);
      },
      onError: (err) => this.options.logger.error({ err: err.message }, 'watching the topology files failed; changes may be missed until restart'),
    });
    this.configAliases = this.readAliasDir();
    this.load();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.watcher?.close();
  }

  /** SIGHUP: re-read the alias files and the topology file now. */
  reload(): void {
    this.configAliases = this.readAliasDir();
    this.load();
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
      if (pending.has('aliases')) this.reloadAliases();
      if (pending.has('topology')) this.topologyChanged();
      else if (pending.has('journal')) this.readJournal();
    }, delay);
  }

  private reloadAliases(): void {
    this.configAliases = this.readAliasDir();
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
      const bytes = this.readBytes(this.file);
      const read = bytes === null ? null : readTopology(bytes, () => {});
      if (!read?.ok) return;
      this.topology = read.topology;
      this.options.onForeignWrite?.(read.topology);
      return;
    }
    this.load();
  }

  /** Reads the topology file whole (or its cached image) and then its journal. */
  private load(): void {
    const { state, logger } = this.options;
    const cached = readImageCache(this.file);
    if (cached) {
      // Our own snapshot, unchanged since its image was cached: skip the parse.
      this.fileAliases = new Map();
      this.topology = { version: cached.image.version, aliases: new Map(), ptrRecords: null, generatedAt: null, source: cached.head.source, cluster: cached.head.cluster };
      this.lastError = null;
      state.replace(cached.image.buffer as SharedArrayBuffer, this.changedAliases());
      this.loaded(cached.image.version, 'image cache');
      return;
    }
    const bytes = this.readBytes(this.file);
    if (bytes === null) return;
    // Rows go straight into the image; the file never exists as one object graph.
    const builder = new ImageBuilder(Math.ceil(bytes.length / 120));
    const skipped: string[] = [];
    const read = readTopology(bytes, (i) => {
      const reason = builder.add(i);
      if (reason !== null) skipped.push(`instance ${i.id}: ${reason}; skipped`);
    });
    if (!read.ok) return void this.reject(`topology file ${this.file} rejected: ${read.error}`);
    skipped.unshift(...read.warnings);
    for (const warning of skipped.slice(0, 20)) logger.warn({ file: this.file }, `topology row skipped: ${warning}`);
    if (skipped.length > 20) logger.warn({ file: this.file, skipped: skipped.length }, 'more topology rows skipped');
    this.topology = read.topology;
    this.fileAliases = read.topology.aliases;
    this.lastError = null;
    state.replace(builder.finish({ version: read.topology.version, ptrRecords: read.topology.ptrRecords }, state.allocate), this.changedAliases());
    this.loaded(read.topology.version, 'file');
  }

  private loaded(version: number, from: string): void {
    this.counts.reloads++;
    this.tail = null;
    this.readJournal();
    const view = this.options.state.current!;
    this.options.logger.info({ version: view.version, snapshot: version, records: view.recordCount, from }, 'topology in service');
    this.options.onRead?.();
  }

  /** Applies what the journal gained since the last read; a journal of another snapshot is ignored. */
  private readJournal(): void {
    if (this.ownSnapshot) return;
    const view = this.options.state.current;
    if (!view || !this.topology) return;
    let fd: number;
    try {
      fd = openSync(journalPath(this.file), 'r');
    } catch {
      this.tail = null;
      return;
    }
    try {
      const { ino, size } = fstatSync(fd);
      if (this.tail && (this.tail.ino !== ino || size < this.tail.offset)) {
        // A journal reset comes with a new snapshot: read both again.
        this.tail = null;
        closeSync(fd);
        fd = -1;
        this.load();
        return;
      }
      const from = this.tail?.offset ?? 0;
      if (size === from) return;
      const bytes = Buffer.alloc(size - from);
      readSync(fd, bytes, 0, bytes.length, from);
      const read = parseJournal(bytes.toString('utf8'), this.tail === null);
      if (this.tail === null && (read.base !== this.topology.version || read.cluster !== this.topology.cluster)) {
        // Written for another snapshot (a compaction in progress): the snapshot already holds it.
        this.tail = { ino, offset: size };
        return;
      }
      for (const warning of read.warnings) this.options.logger.warn({ file: journalPath(this.file) }, warning);
      for (const entry of read.entries) {
        if (entry.version <= this.options.state.current!.version) continue;
        this.options.state.apply(entry.version, entry.removes, entry.adds);
      }
      this.tail = { ino, offset: from + read.consumed };
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }

  private readBytes(path: string): Buffer | null {
    try {
      return readFileSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // No file yet is the normal start of a syncing node; anything else is an error.
      if (code === 'ENOENT' && !this.options.state.current) return null;
      this.reject(`cannot read topology file ${path}: ${code ?? (err as Error).message}`);
      return null;
    }
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
        const text = readFileSync(path, 'utf8');
        const doc = parseStructured(name, text);
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

