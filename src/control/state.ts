// The topology worker's copy of what DNS serves: the same view the DNS thread holds
// (base image + overlay), kept in step by sending it every image and delta made here. A
// change is applied as a delta (O(change)); once the overlay or the journal has grown to
// a fixed fraction of the topology, both are compacted — a new base image, and a new
// snapshot on disk when the syncer owns the file — so the amortised cost per change stays
// independent of the topology's size (a database's WAL and checkpoint, in small).
import { ImageBuilder } from '../image/builder.ts';
import { writeImageCache } from '../image/cache.ts';
import { tagsOf } from '../image/cache-tags.ts';
import { TopologyImage } from '../image/image.ts';
import { sameInstance, type AliasMap, type Instance } from '../image/instance.ts';
import { ImagePool } from '../image/pool.ts';
import { instanceName, TopologyView, type TopologyDelta } from '../image/view.ts';
import type { Logger } from '../log.ts';
import { writeFileAtomicSync } from '../util/atomic-file.ts';
import { collectGarbage } from '../util/worker-thread.ts';
import { JournalWriter, type JournalEntry } from './journal.ts';
import type { CatchUp, ToMain } from './protocol.ts';
import { snapshotChunks, type SnapshotMeta } from './snapshot.ts';
import type { SnapshotBuilder, TopologySink } from './syncer.ts';

/** Changes an overlay may hold before it is compacted: a fixed fraction of the topology (amortised O(1) per change). */
export function compactionThreshold(instances: number): number {
  return Math.max(1024, instances >> 4);
}

/** Past this many changed instances a new image is announced as 'replaced' (the cache is flushed). */
function replacedThreshold(instances: number): number {
  return Math.max(4096, instances >> 6);
}

/** Instances that differ between two views (both sides of each change), or 'replaced' past `limit`. O(topology). */
export function changedInstances(before: TopologyView, after: TopologyView, limit: number): Instance[] | 'replaced' {
  const changed: Instance[] = [];
  // Lookups both ways instead of a set of every name: nothing of O(topology) is kept.
  for (const i of after.instances()) {
    const old = before.get(instanceName(i));
    if (old && sameInstance(old, i)) continue;
    if (old) changed.push(old);
    changed.push(i);
    if (changed.length > limit) return 'replaced';
  }
  for (const i of before.instances()) {
    if (after.get(instanceName(i))) continue;
    changed.push(i);
    if (changed.length > limit) return 'replaced';
  }
  return changed;
}

/** Compiles every live instance of a view into a new image (in a buffer from `allocate`). */
export function compactView(view: TopologyView, allocate?: (bytes: number) => SharedArrayBuffer): SharedArrayBuffer {
  const builder = new ImageBuilder(view.recordCount);
  for (const i of view.instances()) builder.add(i);
  return builder.finish({ version: view.version, ptrRecords: null }, allocate);
}

export interface StateCounts {
  compactions: number;
  writeFailures: number;
}

/**
 * The file the syncer owns: snapshot + journal + image cache. A failed write (disk full,
 * read-only) leaves the last good snapshot whole; it is logged, counted, and retried as
 * a whole snapshot at the next change or periodic retry (TopologyState.retryFailedWrite).
 */
export class OwnedFile {
  private readonly journal: JournalWriter;
  private snapshotBytes = 0;
  /** The version of the last snapshot written (null: none yet). */
  snapshotVersion: number | null = null;
  /** A write failed since the last good snapshot: the journal is behind memory. */
  private broken = true;
  writeError: string | null = null;

  constructor(readonly file: string, private readonly cluster: string, private readonly logger: Logger, private readonly counts: StateCounts) {
    this.journal = new JournalWriter(file);
  }

  /** Rewrite due: the journal has grown to a quarter of the snapshot, or an earlier write failed. */
  get due(): boolean {
    return this.broken || this.journal.bytes > Math.max(1 << 20, this.snapshotBytes >> 2);
  }

  snapshot(view: TopologyView): void {
    const meta: SnapshotMeta = { version: view.version, cluster: this.cluster };
    let bytes = 0;
    try {
      writeFileAtomicSync(this.file, (function* () {
        for (const chunk of snapshotChunks(meta, view.instances())) {
          bytes += Buffer.byteLength(chunk);
          yield chunk;
        }
      })());
      this.journal.reset(view.version, this.cluster);
      this.snapshotBytes = bytes;
      this.snapshotVersion = view.version;
      this.broken = false;
      this.writeError = null;
    } catch (err) {
      this.fail('cannot write the topology file; the last good one stays on disk and DNS answers from memory', err);
      return;
    }
    try {
      if (view.pending === 0) writeImageCache(this.file, view.base, bytes);
    } catch (err) {
      // Only a slower restart is lost; the snapshot itself is written.
      this.logger.warn({ file: this.file, err: (err as Error).message }, 'cannot write the cached topology image');
    }
  }

  append(version: number, removes: string[], adds: Instance[]): void {
    if (this.broken) return;
    try {
      this.journal.append({ version, removes, adds });
    } catch (err) {
      this.fail('cannot append to the topology journal; the file is rewritten whole at the next chance', err);
    }
  }

  close(): void {
    this.journal.close();
  }

  private fail(message: string, err: unknown): void {
    this.broken = true;
    this.counts.writeFailures++;
    this.writeError = `${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`.trim();
    this.logger.error({ file: this.file, err: this.writeError }, message);
  }
}

export interface TopologyStateOptions {
  /** dns.domains: served even with no records. */
  domains: string[];
  post: (message: ToMain, transfer?: ArrayBuffer[]) => void;
  logger: Logger;
}

export class TopologyState implements TopologySink {
  private view: TopologyView | null = null;
  private aliases: AliasMap = new Map();
  private seq = 0;
  /** Set while the syncer owns and writes the file. */
  owned: OwnedFile | null = null;
  readonly counts: StateCounts = { compactions: 0, writeFailures: 0 };
  /** Buffers for new images: the released ones are reused. */
  private readonly pool = new ImagePool();
  readonly allocate = (bytes: number): SharedArrayBuffer => this.pool.take(bytes);
  /** Image buffers sent to the DNS thread and not released yet, by id. */
  private readonly sent = new Map<number, SharedArrayBuffer>();
  private nextBufferId = 0;

  constructor(private readonly options: TopologyStateOptions) {}

  get current(): TopologyView | null {
    return this.view;
  }

  /**
   * Puts a whole new topology in service (a file read, a database snapshot), with new
   * aliases when they changed too, and the changes that follow it (a journal's), all in
   * one step: the DNS thread never answers from the image without them. It is told which
   * instances differ, so it keeps the cached answers of the rest. Returns the view now in service.
   */
  replace(buffer: SharedArrayBuffer, aliases?: AliasMap, changes: JournalEntry[] = []): TopologyView {
    const before = this.view;
    if (aliases) this.aliases = aliases;
    const next = this.newView(new TopologyImage(buffer), this.aliases);
    const deltas = changes.map((c) => ({ seq: ++this.seq, version: c.version, removes: c.removes, adds: c.adds }));
    for (const delta of deltas) next.apply(delta);
    const changed = before === null || aliases !== undefined || before.hasHealth !== next.hasHealth
      || before.liveDomains().join(' ') !== next.liveDomains().join(' ')
      ? 'replaced'
      : changedInstances(before, next, replacedThreshold(next.recordCount));
    this.view = next;
    // The DNS thread is sent the cache tags, not the instances: a typed array it need not decode.
    this.postImage(buffer, changed === 'replaced' ? changed : tagsOf(changed), deltas);
    this.owned?.snapshot(next);
    collectGarbage();
    return next;
  }

  /**
   * Starts from the view the DNS thread answers from (a restarted worker): the state goes
   * on from there, so a restart never takes back an answer the DNS thread was giving.
   */
  resume(from: CatchUp): void {
    this.aliases = from.aliases;
    this.seq = from.deltas.at(-1)?.seq ?? from.seq;
    const view = new TopologyView(new TopologyImage(from.buffer), { aliases: from.aliases, domains: this.options.domains });
    view.seq = from.seq;
    for (const delta of from.deltas) view.apply(delta);
    this.view = view;
  }

  /** A whole topology compiled as its instances come (the syncer's snapshot), into a buffer of the pool. */
  snapshot(): SnapshotBuilder {
    const builder = new ImageBuilder();
    return {
      add: (i) => builder.add(i),
      finish: (version) => new TopologyView(new TopologyImage(builder.finish({ version, ptrRecords: null }, this.allocate))),
    };
  }

  /** Puts a snapshot's view in service, compiled first if changes were applied to it since. */
  replaceView(view: TopologyView): void {
    this.replace(view.pending === 0 ? (view.base.buffer as SharedArrayBuffer) : compactView(view, this.allocate));
  }

  /** The alias files changed; the topology did not. */
  setAliases(aliases: AliasMap): void {
    this.aliases = aliases;
    this.view?.setAliases(aliases);
    this.options.post({ type: 'aliases', aliases });
  }

  /** Applies one change set as a delta: O(change) here, on the DNS thread and on disk. */
  apply(version: number, removes: string[], adds: Instance[]): void {
    const view = this.view;
    if (!view) throw new Error('no topology to apply a delta to');
    if (removes.length === 0 && adds.length === 0 && version === view.version) return;
    const delta = { seq: ++this.seq, version, removes, adds };
    view.apply(delta);
    this.options.post({ type: 'delta', delta });
    this.owned?.append(version, removes, adds);
    if (view.pending >= compactionThreshold(view.recordCount) || this.owned?.due) this.compact(view);
  }

  /**
   * Rewrites the file whole if a write failed (disk full, read-only) and nothing has
   * rewritten it since: called periodically, so the file catches up once space is back
   * even when no change comes to trigger a compaction.
   */
  retryFailedWrite(): void {
    if (this.view && this.owned?.writeError) this.owned.snapshot(this.view);
  }

  /** Starts owning the file: the state in service is written as a fresh snapshot now. */
  own(file: OwnedFile): void {
    this.owned = file;
    if (this.view) file.snapshot(this.view);
  }

  private compact(view: TopologyView): void {
    const started = performance.now();
    const next = this.newView(new TopologyImage(compactView(view, this.allocate)), this.aliases);
    this.view = next;
    this.counts.compactions++;
    this.postImage(next.base.buffer as SharedArrayBuffer, new Uint32Array(0));
    this.owned?.snapshot(next);
    collectGarbage();
    this.options.logger.debug({ records: next.recordCount, ms: Math.round(performance.now() - started) }, 'topology compacted');
  }

  get imageBuffers(): { inUse: number; spare: number } {
    return { inUse: this.sent.size, spare: this.pool.size };
  }

  /** No thread answers from this buffer any more (the DNS thread says so): it goes back to the pool. */
  release(bufferId: number): void {
    const buffer = this.sent.get(bufferId);
    this.sent.delete(bufferId);
    if (buffer && buffer !== this.view?.base.buffer) this.pool.put(buffer);
  }

  private postImage(buffer: SharedArrayBuffer, change: 'replaced' | Uint32Array, deltas: TopologyDelta[] = []): void {
    const bufferId = ++this.nextBufferId;
    this.sent.set(bufferId, buffer);
    const seq = this.seq - deltas.length;
    this.options.post({ type: 'image', buffer, bufferId, seq, deltas, aliases: this.aliases, change }, change === 'replaced' ? [] : [change.buffer as ArrayBuffer]);
  }

  private newView(image: TopologyImage, aliases: AliasMap): TopologyView {
    const view = new TopologyView(image, { aliases, domains: this.options.domains });
    view.seq = this.seq;
    return view;
  }
}
