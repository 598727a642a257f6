// The thin query interface everything above it is written against. Its adapters: a
// PostgreSQL server through `pg` (pg-db.ts), and the embedded PGlite in a thread of its
// own (embedded-db.ts). Same SQL on both. Each is imported only when it is opened, so a
// daemon on a PostgreSQL server never loads PGlite, nor one on the embedded database `pg`.
// Nothing relies on session state, so it works through PgBouncer in transaction pooling
// mode: every statement or transaction may run on another server connection, locks are
// transaction-level, and LISTEN is used only where a notification is seen to arrive
// (polling is the baseline).

export type SqlValue = string | number | boolean | null | string[] | number[];
export type Row = Record<string, unknown>;

export interface Queryable {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names its SQL's row type, as with pg's query<T>
  query<T extends Row = Row>(text: string, params?: SqlValue[]): Promise<{ rows: T[]; rowCount: number }>;
}

export type Isolation = 'read committed' | 'repeatable read';

export interface Db extends Queryable {
  readonly kind: 'pg' | 'pglite';
  /** Runs `fn` in one transaction; rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, isolation?: Isolation): Promise<T>;
  /**
   * Calls `fn` on every NOTIFY on `channel`; resolves to an unsubscribe function.
   * `onLost` runs if the listening connection dies (subscribe again later). Where
   * notifications cannot arrive (a transaction pooler in between) it stops listening by
   * itself soon after and `fn` is never called: callers poll anyway.
   */
  listen(channel: string, fn: () => void, onLost: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export class PresenceError extends Error {
  constructor(readonly code: 'DB_UNREACHABLE' | 'REGISTRATIONS_MISSING', message: string) {
    super(message);
  }
}
