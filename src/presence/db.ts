// The thin query interface everything above it is written against. Its adapters: a
// PostgreSQL server through `pg` (pg-db.ts), and the embedded PGlite in a thread of its
// own (embedded-db.ts). Same SQL on both. Each is imported only when it is opened, so a
// daemon on a PostgreSQL server never loads PGlite, nor one on the embedded database `pg`.
import type { Logger } from '../log.ts';

export type SqlValue = string | number | boolean | null | string[] | number[];
export type Row = Record<string, unknown>;

export interface Queryable {
  query<T extends Row = Row>(text: string, params?: SqlValue[]): Promise<{ rows: T[]; rowCount: number }>;
}

export type Isolation = 'read committed' | 'repeatable read';

export interface Db extends Queryable {
  readonly kind: 'pg' | 'pglite';
  /** Runs `fn` in one transaction; rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, isolation?: Isolation): Promise<T>;
  /** Runs `fn` holding a session advisory lock (a no-op on the single-connection PGlite). */
  withAdvisoryLock<T>(key: number, fn: (db: Queryable) => Promise<T>): Promise<T>;
  /**
   * Calls `fn` on every NOTIFY on `channel`; resolves to an unsubscribe function.
   * `onLost` runs if the listening connection dies (subscribe again later).
   */
  listen(channel: string, fn: () => void, onLost: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export class PresenceError extends Error {
  constructor(readonly code: 'DB_UNREACHABLE' | 'REGISTRATIONS_MISSING', message: string) {
    super(message);
  }
}

/** A URL with its password masked, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable database url>';
  }
}
