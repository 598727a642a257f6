// The embedded database (PGlite) from any thread: it runs in a worker of its own
// (embedded-db-worker.ts) and `RemoteDb` is the thin query interface (db.ts `Db`) over a
// MessagePort to it, so the store above is the same code on PGlite as on a server.
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import type { Logger } from '../log.ts';
import { siblingModule, startWorker } from '../util/worker-thread.ts';
import { PresenceError, type Db, type Isolation, type Queryable, type Row, type SqlValue } from './db.ts';

export interface EmbeddedDbOptions {
  /** PGlite's data directory. */
  dir: string;
}

export type DbRequest =
  | { id: number; op: 'query'; sql: string; params: SqlValue[]; tx?: number }
  | { id: number; op: 'begin'; isolation: Isolation }
  | { id: number; op: 'commit' | 'rollback'; tx: number }
  | { id: number; op: 'listen' | 'unlisten'; channel: string };

export type DbResponse =
  | { id: number; ok: true; rows?: Row[]; rowCount?: number; tx?: number }
  | { id: number; ok: false; error: string; code: string | null };

/** A database error from the worker, with PostgreSQL's SQLSTATE when there is one. */
export class EmbeddedDbError extends Error {
  constructor(message: string, readonly code: string | null) {
    super(message);
  }
}

export class RemoteDb implements Db {
  readonly kind = 'pglite';
  private nextId = 1;
  private readonly calls = new Map<number, { resolve: (r: DbResponse & { ok: true }) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Map<string, Set<() => void>>();

  constructor(private readonly port: MessagePort) {
    port.on('message', (message: DbResponse | { notify: string }) => {
      if ('notify' in message) {
        for (const fn of this.listeners.get(message.notify) ?? []) fn();
        return;
      }
      const call = this.calls.get(message.id);
      if (!call) return;
      this.calls.delete(message.id);
      if (message.ok) call.resolve(message);
      else call.reject(new EmbeddedDbError(message.error, message.code));
    });
    // Nothing else keeps the thread alive for a port; the daemon's own servers do.
    port.unref();
  }

  private call(request: DbRequest extends infer R ? R extends unknown ? Omit<R, 'id'> : never : never): Promise<DbResponse & { ok: true }> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      this.port.postMessage({ ...request, id });
    });
  }

  private queryable(tx?: number): Queryable {
    return {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names its SQL's row type, as with pg's query<T>
      query: async <T extends Row = Row>(sql: string, params: SqlValue[] = []) => {
        const r = await this.call({ op: 'query', sql, params, tx });
        return { rows: (r.rows ?? []) as T[], rowCount: r.rowCount ?? 0 };
      },
    };
  }

  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names its SQL's row type, as with pg's query<T>
  query<T extends Row = Row>(sql: string, params: SqlValue[] = []): Promise<{ rows: T[]; rowCount: number }> {
    return this.queryable().query<T>(sql, params);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>, isolation: Isolation = 'read committed'): Promise<T> {
    const { tx } = await this.call({ op: 'begin', isolation });
    if (tx === undefined) throw new EmbeddedDbError('the embedded database began a transaction without naming it', null);
    let result: T;
    try {
      result = await fn(this.queryable(tx));
    } catch (err) {
      await this.call({ op: 'rollback', tx }).catch(() => undefined);
      throw err;
    }
    await this.call({ op: 'commit', tx });
    return result;
  }

  /** Every transaction is exclusive in the database's thread: holding one is holding the lock. */
  async listen(channel: string, fn: () => void): Promise<() => Promise<void>> {
    let set = this.listeners.get(channel);
    if (!set) this.listeners.set(channel, (set = new Set()));
    set.add(fn);
    await this.call({ op: 'listen', channel });
    return async () => {
      set.delete(fn);
      if (set.size === 0) await this.call({ op: 'unlisten', channel }).catch(() => undefined);
    };
  }

  close(): Promise<void> {
    this.port.close();
    return Promise.resolve();
  }
}

export interface EmbeddedDb {
  /** This thread's connection; usable at once (statements wait while PGlite opens). */
  db: RemoteDb;
  /** A port for another thread's connection (transfer it; wrap it in a RemoteDb there). */
  connect(): MessagePort;
  /** Settles once PGlite is open, or failed to open (statements then fail with the reason). */
  ready: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts PGlite in its own thread. It takes a second or more to open; connections can be
 * made and used meanwhile (their statements wait), and DNS never waits for it.
 */
export function startEmbeddedDb(options: EmbeddedDbOptions, logger: Logger): EmbeddedDb {
  const worker: Worker = startWorker(siblingModule(import.meta.url, 'embedded-db-worker'), options, [], 'pglite');
  worker.on('error', (err: Error) => logger.error({ err: err.message }, 'the embedded database thread failed'));
  const ready = new Promise<void>((resolve, reject) => {
    worker.once('message', (m: { type: 'ready' } | { type: 'failed'; error: string }) => {
      if (m.type === 'ready') resolve();
      else reject(new PresenceError('DB_UNREACHABLE', `cannot open the embedded database in ${options.dir}: ${m.error} (is another presence-dns process using it?)`));
    });
    worker.once('exit', (code) => reject(new PresenceError('DB_UNREACHABLE', `the embedded database thread exited with ${code}`)));
  });
  const connect = () => {
    const { port1, port2 } = new MessageChannel();
    worker.postMessage({ type: 'connect', port: port2 }, [port2]);
    return port1;
  };
  return {
    db: new RemoteDb(connect()),
    connect,
    ready,
    async stop() {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5000);
        worker.once('message', () => {
          clearTimeout(timer);
          resolve();
        });
        worker.postMessage({ type: 'close' });
      });
      await worker.terminate();
    },
  };
}
