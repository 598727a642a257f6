// The PostgreSQL-server adapter of the query interface (db.ts), through a `pg` pool.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../log.ts';
import { inBackground } from '../util/background.ts';
import { errorMessage } from '../util/error-message.ts';
import { PresenceError, type Db, type Isolation, type Queryable, type Row, type SqlValue } from './db.ts';

// pg hands int8 back as text so it never loses precision; revisions stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

/** How long a NOTIFY to ourselves may take to arrive before LISTEN is judged not to work. */
const LISTEN_PROBE_MS = 5000;
/** How long opening a connection may take. */
const CONNECT_TIMEOUT_MS = 3000;
/** How long a checkout may take in all (waiting for a free connection, then opening one) before the pool is given up. */
const CHECKOUT_DEADLINE_MS = 3 * CONNECT_TIMEOUT_MS;
const PROBE_PREFIX = 'presence-dns-probe:';

/** One pool per part of the daemon, so a part's waits never hold up another's statements. */
export interface PoolOptions {
  /** Most connections the pool opens (they are opened on first use, closed when idle). */
  max: number;
  /** The part the pool serves, shown as `application_name` in pg_stat_activity (e.g. "presence-dns registrar"). */
  name: string;
}

/** Pool sizes of the daemon's parts: what each does at most at once, plus one spare. */
export const POOLS = {
  /** A heartbeat or one cell's write at a time (passes never overlap): one connection, whatever the fleet's size. */
  registrar: { max: 1, name: 'presence-dns registrar' },
  /** The lock, a cell listing or one expiry transaction at a time. */
  reaper: { max: 2, name: 'presence-dns reaper' },
  /** The LISTEN connection, held, plus a pass's queries or one snapshot transaction. */
  syncer: { max: 3, name: 'presence-dns syncer' },
  /** A node following the fan-out reads the database only in its fallback, one statement at a time (no LISTEN). */
  follower: { max: 1, name: 'presence-dns syncer' },
} as const satisfies Record<string, PoolOptions>;

/** For tools and tests that use one pool for everything. */
const GENERAL_POOL: PoolOptions = { max: 4, name: 'presence-dns' };

export class PgDb implements Db {
  readonly kind = 'pg';
  private pool: pg.Pool;
  private listenUnsupportedLogged = false;
  /** Pools given up on: ended in the background, never awaited (a wedged pool's end may never come). */
  replacedPools = 0;
  /** Connections of this pool this part holds now (checked out, not yet given back). */
  private held = 0;

  constructor(private readonly url: string, private readonly logger: Logger, private readonly poolOptions: PoolOptions = GENERAL_POOL) {
    this.pool = this.openPool();
  }

  private openPool(): pg.Pool {
    const pool = new pg.Pool({
      connectionString: this.url,
      max: this.poolOptions.max,
      application_name: this.poolOptions.name,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      // A partitioned database must fail a query, not hang the syncer or the registrar.
      query_timeout: 5000,
      idleTimeoutMillis: 10_000,
    });
    // An idle connection dying with the server would otherwise crash the process.
    pool.on('error', (err) => {
      this.logger.warn({ err: err.message }, 'idle database connection lost');
    });
    return pool;
  }

  /**
   * A connection from the pool (give it back with `giveBack`), or an error. pg-pool can
   * wedge after a connect times out (node-postgres #2243, #3197): a zombie client keeps its
   * slot, and every later checkout waits and times out behind it — a registrar that would
   * never heartbeat again. So a checkout that times out (pg's own wait, or our deadline for
   * one that never settles) while this part holds none of the pool's connections gives the
   * pool up: it is ended in the background and the next checkout opens a fresh one.
   */
  private async checkout(): Promise<pg.PoolClient> {
    const pool = this.pool;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new PresenceError('DB_UNREACHABLE', `no connection to the database from pool "${this.poolOptions.name}" within ${CHECKOUT_DEADLINE_MS} ms`));
      }, CHECKOUT_DEADLINE_MS);
    });
    const connecting = pool.connect();
    try {
      const client = await Promise.race([connecting, deadline]);
      this.held++;
      return client;
    } catch (err) {
      const timedOut = err instanceof PresenceError || /timeout/i.test(errorMessage(err));
      if (timedOut && this.held === 0 && this.pool === pool) {
        this.pool = this.openPool();
        this.replacedPools++;
        this.logger.warn({ pool: this.poolOptions.name, err: errorMessage(err) }, 'no database connection although this part holds none (a wedged pool?); the pool is replaced');
        // Whatever the old pool hands out late goes straight back; the pool is then ended.
        connecting.then((client) => {
          client.release(true);
        }, () => undefined);
        pool.end().catch(() => undefined);
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Returns a connection `checkout` gave; with an error (or true) it is closed, not pooled. */
  private giveBack(client: pg.PoolClient, err?: Error | boolean): void {
    this.held--;
    client.release(err);
  }

  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names its SQL's row type, as with pg's query<T>
  async query<T extends Row = Row>(text: string, params: SqlValue[] = []) {
    const client = await this.checkout();
    try {
      const result = await client.query<T>(text, params);
      this.giveBack(client);
      return { rows: result.rows, rowCount: result.rowCount ?? 0 };
    } catch (err) {
      // A broken connection must not go back into the pool.
      this.giveBack(client, err instanceof Error ? err : true);
      throw err;
    }
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>, isolation: Isolation = 'read committed'): Promise<T> {
    const client = await this.checkout();
    try {
      await client.query(`BEGIN ISOLATION LEVEL ${isolation === 'repeatable read' ? 'REPEATABLE READ' : 'READ COMMITTED'}`);
      const result = await fn(clientQueryable(client));
      await client.query('COMMIT');
      this.giveBack(client);
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      // A broken connection must not go back into the pool.
      this.giveBack(client, err instanceof Error ? err : true);
      throw err;
    }
  }

  async listen(channel: string, fn: () => void, onLost: () => void): Promise<() => Promise<void>> {
    const client = await this.checkout();
    let released = false;
    const release = (err?: Error) => {
      if (released) return;
      released = true;
      this.giveBack(client, err ?? false);
    };
    // Our own probe says LISTEN works here; anyone's probe is not a change.
    const probe = `${PROBE_PREFIX}${randomUUID()}`;
    let probed: (arrived: boolean) => void = () => undefined;
    const arrived = new Promise<boolean>((resolve) => (probed = resolve));
    client.on('notification', (msg) => {
      if (msg.channel !== channel) return;
      if (msg.payload === probe) probed(true);
      else if (!msg.payload?.startsWith(PROBE_PREFIX)) fn();
    });
    client.on('error', (err) => {
      release(err);
      onLost();
    });
    const escaped = pg.escapeIdentifier(channel);
    try {
      await client.query(`LISTEN ${escaped}`);
    } catch (err) {
      release(err as Error);
      throw err;
    }
    const unlisten = async () => {
      if (released) return;
      await client.query(`UNLISTEN ${escaped}`).catch(() => undefined);
      release();
    };
    inBackground('listen_probe', this.probeListen(channel, probe, arrived, probed, unlisten));
    return unlisten;
  }

  /**
   * Sends `probe` to ourselves in the background (the caller is not held up). Through a
   * transaction pooler the LISTEN ran on a server connection the listening client no
   * longer holds, so the probe never comes back: then stop listening (`stop`) and say so.
   */
  private async probeListen(channel: string, probe: string, arrived: Promise<boolean>, probed: (arrived: boolean) => void, stop: () => Promise<void>): Promise<void> {
    const timer = setTimeout(() => probed(false), LISTEN_PROBE_MS);
    try {
      await this.query('SELECT pg_notify($1, $2)', [channel, probe]);
    } catch {
      // The database went away meanwhile: the listening connection's loss is reported by itself.
      clearTimeout(timer);
      return;
    }
    const works = await arrived;
    clearTimeout(timer);
    if (works) return;
    await stop();
    if (this.listenUnsupportedLogged) return;
    this.listenUnsupportedLogged = true;
    this.logger.warn({ channel, waitedMs: LISTEN_PROBE_MS },
      'a NOTIFY sent to ourselves never arrived (a transaction pooler such as PgBouncer between us and the database?): not listening; changes are seen by polling');
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

function clientQueryable(client: pg.PoolClient): Queryable {
  return {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names its SQL's row type, as with pg's query<T>
    async query<T extends Row = Row>(text: string, params: SqlValue[] = []) {
      const result = await client.query<T>(text, params);
      return { rows: result.rows, rowCount: result.rowCount ?? 0 };
    },
  };
}

/** A pool to the PostgreSQL server at `url` (connections are made on first use). */
export function openPgDb(url: string, logger: Logger, pool?: PoolOptions): Db {
  return new PgDb(url, logger, pool);
}
