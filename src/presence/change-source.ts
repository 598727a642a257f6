// Where a syncer reads the presence table's changes from. The syncer (src/control/syncer.ts)
// keeps a position (the revision it applied, and the row that carried it) and asks its
// source what to do from there: nothing, read the changes after it, or take a snapshot.
// `SqlChangeSource` answers from the database itself; src/fanout/ answers from NATS (the
// changes one publisher read once) and falls back to SQL. Every source hands over the same
// rows in the same revision order, so the syncer applies them the same way.
import { planSync, snapshotCause, type SyncPosition } from './decisions.ts';
import { NOTIFY_CHANNEL, type PresenceRow, type PresenceStore } from './store.ts';

export type SnapshotCause = NonNullable<ReturnType<typeof snapshotCause>>;

/** What a sync pass does from its position. */
export type SyncPlan =
  | { kind: 'idle' }
  | { kind: 'incremental' }
  /**
   * `lost`: rows may have been lost (not deleted), so what the snapshot lacks may come back.
   * `databaseBehind`: the database's newest revision is below the position (a restore, or a
   * replica that has not yet replayed what the position came from).
   */
  | { kind: 'snapshot'; cause: SnapshotCause; databaseBehind?: boolean };

export interface SnapshotResult {
  /** The revision the snapshot is consistent at, and the row that carried it. */
  revision: number;
  lastId: string | null;
}

export interface ChangeSource {
  /** Where rows come from, for status and logs: "sql" or "nats". */
  readonly kind: string;
  /** The presence database's id (it marks the files synced from it). */
  clusterId(): Promise<string>;
  plan(position: SyncPosition): Promise<SyncPlan>;
  /** Rows (tombstones included) changed after `revision`, oldest first, about `limit` at most. */
  changesSince(revision: number, limit: number): Promise<PresenceRow[]>;
  /**
   * Every live row, handed over as read, from one consistent snapshot. `restart`: the rows
   * handed over so far are void, and the snapshot starts again from its first row (a source
   * that fell back to another after a partial read).
   */
  snapshot(onRow: (row: PresenceRow) => void, restart: () => void): Promise<SnapshotResult>;
  /** Wakes the syncer early when there is news; resolves to an unsubscribe. `lost`: subscribe again later. */
  subscribe(wake: () => void, lost: () => void): Promise<() => Promise<void>>;
}

/** The database itself: head and row revisions to plan, `revision > last` pages, a repeatable-read snapshot, NOTIFY. */
export class SqlChangeSource implements ChangeSource {
  readonly kind = 'sql';

  constructor(readonly store: PresenceStore, private readonly options: { listen?: boolean } = {}) {}

  clusterId(): Promise<string> {
    return this.store.clusterId();
  }

  async plan(position: SyncPosition): Promise<SyncPlan> {
    const { id, revision } = position;
    let head: { revision: number; purgedBelow: number };
    let rowRevision: number | null | undefined;
    if (id === null) head = await this.store.head();
    else {
      const read = await this.store.headAndRow(id);
      head = read.head;
      // A head behind our revision already says "lost"; the row's revision matters only otherwise.
      if (revision !== null && head.revision >= revision) rowRevision = read.rowRevision;
    }
    const kind = planSync(position, head, rowRevision);
    if (kind !== 'snapshot') return { kind };
    const cause = snapshotCause(position, head, rowRevision);
    if (cause === null) throw Object.assign(new Error('planSync chose a snapshot that snapshotCause has no cause for'), { code: 'SYNC_PLAN' });
    return { kind, cause, databaseBehind: revision !== null && head.revision < revision };
  }

  changesSince(revision: number, limit: number): Promise<PresenceRow[]> {
    return this.store.changesSince(revision, limit);
  }

  async snapshot(onRow: (row: PresenceRow) => void): Promise<SnapshotResult> {
    const { revision, lastId } = await this.store.snapshot(onRow);
    return { revision, lastId };
  }

  async subscribe(wake: () => void, lost: () => void): Promise<() => Promise<void>> {
    if (this.options.listen === false) return () => Promise.resolve();
    return this.store.db.listen(NOTIFY_CHANNEL, wake, lost);
  }
}
