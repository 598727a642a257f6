// The embedded adapter of the query interface (db.ts): PGlite, PostgreSQL compiled to
// WebAssembly, in this process, with its data in a local directory.
import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { PresenceError, type Db, type Isolation, type Queryable, type Row, type SqlValue } from './db.ts';

class PgliteDb implements Db {
  readonly kind = 'pglite';
  constructor(private readonly db: PGlite) {}

  async query<T extends Row = Row>(text: string, params: SqlValue[] = []) {
    const result = await this.db.query<T>(text, params);
    return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>, isolation: Isolation = 'read committed'): Promise<T> {
    return this.db.transaction(async (tx) => {
      if (isolation === 'repeatable read') await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      return fn({
        async query<R extends Row = Row>(text: string, params: SqlValue[] = []) {
          const result = await tx.query<R>(text, params);
          return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
        },
      });
    });
  }

  withAdvisoryLock<T>(_key: number, fn: (db: Queryable) => Promise<T>): Promise<T> {
    // One connection in one process: nothing else can run migrations concurrently.
    return fn(this);
  }

  async listen(channel: string, fn: () => void): Promise<() => Promise<void>> {
    // In-process: it cannot lose its connection, so there is no onLost to call.
    return this.db.listen(channel, fn);
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

export async function openPglite(dir: string): Promise<Db> {
  mkdirSync(dir, { recursive: true });
  try {
    const db = await PGlite.create(dir);
    return new PgliteDb(db);
  } catch (err) {
    throw new PresenceError('DB_UNREACHABLE', `cannot open the embedded database in ${dir}: ${(err as Error).message} (is another presence-dns process using it?)`);
  }
}
