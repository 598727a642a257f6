// The `pg` adapter through PgBouncer in transaction pooling mode (Debian's pgbouncer in
// front of a private PostgreSQL): nothing relies on session state. Migrations from many
// daemons at once serialise on a transaction-level lock and leave none behind; LISTEN,
// which a pooler cannot carry, is noticed not to work (a probe NOTIFY never arrives) and
// left alone, while straight to the server it works; the store's reads and writes work.
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/presence/db.ts';
import { openPgDb, PgDb } from '../../src/presence/pg-db.ts';
import { migrate } from '../../src/presence/schema.ts';
import { NOTIFY_CHANNEL, PresenceStore } from '../../src/presence/store.ts';
import { PgBouncer } from '../helpers/pgbouncer.ts';
import { PgServer } from '../helpers/pg-server.ts';
import { waitFor } from '../helpers/daemon.ts';
import { registration } from './fixtures.ts';

let server: PgServer;
let bouncer: PgBouncer;
const opened: Db[] = [];
const warnings: string[] = [];
const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push((JSON.parse(line) as { msg: string }).msg) });

function open(url: string): Db {
  const db = openPgDb(url, logger);
  opened.push(db);
  return db;
}

/** What the setup started, stopped in reverse: only what it got to start if it failed halfway. */
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  server = await PgServer.create();
  cleanups.push(() => server.destroy());
  bouncer = await PgBouncer.start(server.port, 2);
  cleanups.push(() => bouncer.stop());
  cleanups.push(() => Promise.all(opened.map((db) => db.close())));
});

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('through PgBouncer (transaction pooling)', () => {
  it('runs the migrations of six daemons at once, one after another, and leaves no lock held', async () => {
    const dbs = Array.from({ length: 6 }, () => open(bouncer.url));
    await Promise.all(dbs.map((db) => migrate(db)));
    const tables = await server.sql<{ n: string }>("SELECT count(*) AS n FROM pg_tables WHERE tablename IN ('presences', 'cells', 'locks', 'presence_revision', 'numeric_ids', 'presence_cluster')");
    expect(Number(tables[0].n)).toBe(6);
    const advisory = await server.sql<{ n: string }>("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'");
    expect(Number(advisory[0].n)).toBe(0);
  });

  it('registers, heartbeats, takes the reaper lock and snapshots', async () => {
    const store = new PresenceStore(open(bouncer.url));
    const owner = crypto.randomUUID();
    await store.registerCell({ cellId: 'bouncer-cell', owner, address: null, ttlMs: 3000 });
    await store.writeInstances('bouncer-cell', [registration('bouncer-a'), registration('bouncer-b', { index: 1, ip: '10.0.0.2' })]);
    expect(await store.heartbeat('bouncer-cell', owner)).toEqual({ liveInstances: 2 });
    expect(await store.acquireLock('reaper', owner, 3000, () => false)).toBe('acquired');
    expect(await store.acquireLock('reaper', owner, 3000, () => false)).toBe('renewed');
    expect(await store.acquireLock('reaper', crypto.randomUUID(), 3000, () => false)).toBe('collision');
    const rows: string[] = [];
    const snap = await store.snapshot((row) => rows.push(row.id));
    expect(rows.sort()).toEqual(['bouncer-a', 'bouncer-b']);
    expect(snap.revision).toBe(2);
  });

  it('does not listen where notifications cannot arrive, and says so', async () => {
    const db = open(bouncer.url);
    let woken = 0;
    const unlisten = await db.listen(NOTIFY_CHANNEL, () => woken++, () => undefined);
    await waitFor(() => warnings.some((w) => w.includes('not listening; changes are seen by polling')), 15_000, 'the probe to be missed');
    await server.sql('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, '99']);
    await new Promise((r) => setTimeout(r, 300));
    expect(woken).toBe(0);
    await unlisten();
  });
});

describe('straight to PostgreSQL', () => {
  it('listens, and is woken by every NOTIFY but the probes', async () => {
    const before = warnings.length;
    const db = open(server.url);
    let woken = 0;
    const unlisten = await db.listen(NOTIFY_CHANNEL, () => woken++, () => undefined);
    await server.sql('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, '100']);
    await waitFor(() => woken === 1, 20_000, 'the notification');
    // Another node's probe is not a change.
    await server.sql('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, 'presence-dns-probe:someone-else']);
    await server.sql('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, '101']);
    await waitFor(() => woken === 2, 20_000, 'the second notification');
    // The probe came back: still listening, nothing said.
    await new Promise((r) => setTimeout(r, 5500));
    await server.sql('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, '102']);
    await waitFor(() => woken === 3, 20_000, 'a notification after the probe window');
    expect(warnings.length).toBe(before);
    await unlisten();
  });
});

describe('a connection that never opens', () => {
  it('gives the pool up and opens a new one, so the part is not silenced for good', { timeout: 30_000 }, async () => {
    // A server that takes the first connection and never answers on it (a stuck pooler),
    // and carries every later one to PostgreSQL.
    let accepted = 0;
    const held: Socket[] = [];
    const proxy = createServer((client) => {
      if (accepted++ === 0) {
        held.push(client);
        return;
      }
      const upstream = connect(server.port, '127.0.0.1');
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => {
      for (const socket of held) socket.destroy();
      proxy.close(resolve);
    }));
    const address = proxy.address() as AddressInfo;
    const db = new PgDb(server.url.replace(`:${server.port}/`, `:${address.port}/`), logger, { max: 1, name: 'presence-dns registrar' });
    opened.push(db);
    await expect(db.query('SELECT 1')).rejects.toThrow(/timeout/);
    expect(db.replacedPools).toBe(1);
    expect(warnings).toContain('no database connection although this part holds none (a wedged pool?); the pool is replaced');
    expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });
});
