// The embedded adapter of the query interface (db.ts): PGlite, PostgreSQL compiled to
// WebAssembly, in this process, with its data in a local directory.
import { mkdirSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { PGlite } from '@electric-sql/pglite';
import { PresenceError, type Db, type Isolation, type Queryable, type Row, type SqlValue } from './db.ts';

/**
 * PGlite's memory settings, what `npm start` needs to stay near DESIGN §9's 150 MB (all
 * processes). Measured on one process that opens PGlite, migrates and runs 3,000
 * queries: 450–700 MB with PGlite's defaults. A plain object, so it can be handed to
 * the worker thread that will own PGlite.
 */
export const PGLITE_SETTINGS = {
  /**
   * V8 flags for WebAssembly (process-wide; PGlite is the only WebAssembly of note here):
   * compile PostgreSQL's module with the baseline compiler only. Tiering its hot
   * functions up to TurboFan cost 300–500 MB of compiled code; queries stay fast enough
   * for presence rows. The implied flags are spelled out: set at run time, V8 does not
   * derive them from --liftoff-only.
   */
  v8Flags: ['--liftoff-only', '--no-wasm-tier-up', '--no-wasm-dynamic-tiering'],
  /**
   * PostgreSQL settings (`-c` start parameters). shared_buffers lives in the wasm
   * memory and is touched as pages are read: 128 MB → 8 MB saved about 120 MB at open.
   * The per-operation memories are capped for a table of presence rows; together they
   * saved about 10 MB more.
   */
  postgres: { shared_buffers: '8MB', work_mem: '1MB', maintenance_work_mem: '8MB', temp_buffers: '1MB' },
} as const;

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
    setFlagsFromString(PGLITE_SETTINGS.v8Flags.join(' '));
    const settings = Object.entries(PGLITE_SETTINGS.postgres).flatMap(([key, value]) => ['-c', `${key}=${value}`]);
    const db = await PGlite.create(dir, { startParams: [...PGlite.defaultStartParams, ...settings] });
    return new PgliteDb(db);
  } catch (err) {
    throw new PresenceError('DB_UNREACHABLE', `cannot open the embedded database in ${dir}: ${(err as Error).message} (is another presence-dns process using it?)`);
  }
}
