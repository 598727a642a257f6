// The PostgreSQL-server adapter of the query interface (db.ts), through a `pg` pool.
import pg from 'pg';
import type { Logger } from '../log.ts';
import type { Db, Isolation, Queryable, Row, SqlValue } from './db.ts';

// pg hands int8 back as text so it never loses precision; revisions stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

export class PgDb implements Db {
  readonly kind = 'pg';
  private readonly pool: pg.Pool;

  constructor(url: string, logger: Logger) {
    this.pool = new pg.Pool({
      connectionString: url,
      max: 4,
      connectionTimeoutMillis: 3000,
      // A partitioned database must fail a query, not hang the syncer or the registrar.
      query_timeout: 5000,
      idleTimeoutMillis: 10_000,
    });
    // An idle connection dying with the server would otherwise crash the process.
    this.pool.on('error', (err) => logger.warn({ err: err.message }, 'idle database connection lost'));
  }

  async query<T extends Row = Row>(text: string, params: SqlValue[] = []) {
    const result = await this.pool.query<T>(text, params);
    return { rows: result.rows, rowCount: result.rowCount ?? 0 };
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>, isolation: Isolation = 'read committed'): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query(`BEGIN ISOLATION LEVEL ${isolation === 'repeatable read' ? 'REPEATABLE READ' : 'READ COMMITTED'}`);
      const result = await fn(clientQueryable(client));
      await client.query('COMMIT');
      client.release();
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      // A broken connection must not go back into the pool.
      client.release(err instanceof Error ? err : true);
      throw err;
    }
  }

  async withAdvisoryLock<T>(key: number, fn: (db: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('SELECT pg_advisory_lock($1)', [key]);
      try {
        return await fn(clientQueryable(client));
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [key]);
      }
    } finally {
      client.release();
    }
  }

  async listen(channel: string, fn: () => void, onLost: () => void): Promise<() => Promise<void>> {
    const client = await this.pool.connect();
    let released = false;
    const release = (err?: Error) => {
      if (released) return;
      released = true;
      client.release(err ?? false);
    };
    client.on('notification', (msg) => {
      if (msg.channel === channel) fn();
    });
    client.on('error', (err) => {
      release(err);
      onLost();
    });
    try {
      await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch (err) {
      release(err as Error);
      throw err;
    }
    return async () => {
      if (released) return;
      await client.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => undefined);
      release();
    };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

function clientQueryable(client: pg.PoolClient): Queryable {
  return {
    async query<T extends Row = Row>(text: string, params: SqlValue[] = []) {
      const result = await client.query<T>(text, params);
      return { rows: result.rows, rowCount: result.rowCount ?? 0 };
    },
  };
}


/** A pool to the PostgreSQL server at `url` (connections are made on first use). */
export function openPgDb(url: string, logger: Logger): Db {
  return new PgDb(url, logger);
}
