// `npm run bench:fleet`: the fleet simulation (docs/presence.md, "A fleet") — FLEET_CELLS (default 1,000)
// cells × FLEET_INSTANCES (200) instances on one PostgreSQL, driven by the real presence
// code: one Registrar per cell (registerCell, then a heartbeat every ttl/3, jittered), one
// Reaper (the lock holder, on its pool), FLEET_SYNCERS (5) real Syncers, each in a worker
// thread of its own (a node: its own pool and topology file), and FLEET_DAEMONS (2) real
// daemons (bin/presence-dns.js, syncing from the same database) answering a steady probe
// (200 queries/s each, from a process of its own), while FLEET_CHANGES (20) instance
// changes a second land on random cells for FLEET_SECONDS (25). It prints one table beside
// the targets: heartbeat latency and failures, sync query latency, rows and bytes read per
// sync, a daemon's CPU per change, convergence of a change to every syncer, the daemons'
// unanswered queries, PostgreSQL's CPU and connections, and what else the machine did.
//
// `-- --pgbouncer`: every client reaches PostgreSQL through PgBouncer in transaction pooling
// (what a large fleet deploys; LISTEN cannot work through it, so the syncers poll).
// `-- --sweep`: 100, 1,000 and 2,000 cells × 200, and 2,000 × 300 (600,000 instances),
// each a run of its own, then how each figure grows against the 100-cell run.
// `-- --json`: one run, its figures as one JSON line (what the sweep reads).
// `-- --nodes N` (and `-- --sweep-nodes`): N syncing nodes that are real sync clients, on
// PgBouncer and NATS (bench/fleet-nodes.ts).
//
// The database is TEST_DATABASE_URL's server (default the local 127.0.0.1:5432), in a
// database created and dropped here. FLEET_POOL_LAYOUT=shared puts the reaper on the
// registrars' pools (the daemon before its pools were split), for the before/after.
// Bounded: every wait has a deadline; every process and worker is stopped, Ctrl-C included.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isMainThread, Worker, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { Registry } from '../src/admin/metrics.ts';
import { systemClock } from '../src/clock.ts';
import { migrate, PresenceStore, Reaper, Registrar, type CellObservation, type Db, type PresenceRow, type WriteResult } from '../src/presence/index.ts';
import { openPgDb, POOLS } from '../src/presence/pg-db.ts';
import { startControlPlane } from '../src/control/index.ts';
import { SqlChangeSource } from '../src/presence/change-source.ts';
import { TopologyImage } from '../src/image/image.ts';
import type { Registration } from '../src/registrations/types.ts';
import { parentThreadPort } from '../src/util/worker-thread.ts';
import { UdpClient } from '../test/dns/client.ts';
import { startDaemon, waitFor, type RunningDaemon } from '../test/helpers/daemon.ts';
import { PgBouncer } from '../test/helpers/pgbouncer.ts';
import { testDatabase, type TestDatabase } from '../test/helpers/postgres.ts';
import { TestSource } from '../test/presence/fixtures.ts';
import { instancesOf, probeNames } from './fleet-shape.ts';
import { probeChild, probeInChild, type ProbeResult } from './probe-process.ts';
import { PostgresWatch } from './postgres-watch.ts';
import { cleanUpOnSignals, cpuMs, machineTicks, pidOf } from './proc.ts';
import { quantiles, type Quantiles } from './stats.ts';

const ARGS = new Set(process.argv.slice(2));
const CELLS = Number(process.env.FLEET_CELLS ?? 1000);
const INSTANCES = Number(process.env.FLEET_INSTANCES ?? 200);
const SECONDS = Number(process.env.FLEET_SECONDS ?? 25);
const SYNCERS = Number(process.env.FLEET_SYNCERS ?? 5);
const DAEMONS = Number(process.env.FLEET_DAEMONS ?? 2);
const CHANGES_PER_SECOND = Number(process.env.FLEET_CHANGES ?? 20);
/** The registrars of all cells share these pools, as a pooler in front of the database would. */
const REGISTRAR_POOLS = Number(process.env.FLEET_POOLS ?? 5);
const REGISTRAR_POOL_SIZE = 4;
const LAYOUT = process.env.FLEET_POOL_LAYOUT === 'shared' ? 'shared' : 'split';
const VIA_PGBOUNCER = ARGS.has('--pgbouncer');
/** PgBouncer's server connections per (database, user): what all clients share. */
const BOUNCER_POOL = 20;
/** The daemon's default: the syncer wakes on NOTIFY; FLEET_LISTEN=0 polls only. */
const LISTEN = process.env.FLEET_LISTEN !== '0';
const DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const TTL_MS = 15_000;
/** /proc/stat's unit (USER_HZ), 100 on Linux. */
const CLOCK_TICKS_PER_S = 100;
const SYNC_INTERVAL_MS = 1000;
const REGISTER_CONCURRENCY = 4;
/** Before the changes: heartbeats and polling only, the daemons' CPU baseline. */
const IDLE_SECONDS = 5;
/** How long after the load the changes still in flight may take to reach every file. */
const DRAIN_MS = 10_000;
/** The probe asks for instances of this index in each cell, which no change touches. */
const PROBED_INDEX = INSTANCES - 1;

/** Wall time on one scale for the main thread and the workers (their timeOrigins differ). */
const wallNow = () => performance.timeOrigin + performance.now();

const quiet = pino({ level: 'silent' });
const log = (line: string) => process.stderr.write(`${line}\n`);

type FromSyncer =
  | { kind: 'published'; revision: number; at: number }
  /** One incremental query: its time, the rows it returned and their size as JSON. */
  | { kind: 'query'; ms: number; rows: number; bytes: number }
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
  heartbeatFailures = 0;
  expired = 0;
  readonly commits: Array<{ revision: number; at: number }> = [];

  override async heartbeat(cellId: string, owner: string): Promise<{ liveInstances: number } | null> {
    const started = performance.now();
    try {
      const result = await super.heartbeat(cellId, owner);
      if (this.measuring) this.heartbeats.push(performance.now() - started);
      return result;
    } catch (err) {
      if (this.measuring) this.heartbeatFailures++;
      throw err;
    }
  }

  override async writeInstances(cellId: string, registrations: Registration[]): Promise<WriteResult> {
    const result = await super.writeInstances(cellId, registrations);
    // The moment the client learns of the commit (a NOTIFY may wake a syncer a little earlier).
    if (this.measuring && result.written + result.tombstoned > 0) this.commits.push({ revision: result.revision, at: wallNow() });
    return result;
  }

  override async expireCell(cell: CellObservation): Promise<number | null> {
    const tombstoned = await super.expireCell(cell);
    if (tombstoned !== null) this.expired++;
    return tombstoned;
  }
}

/** One simulated node's syncer: reports every change it puts in service and every incremental query. */
async function syncerNode(data: SyncerData): Promise<void> {
  const port = parentThreadPort();
  const send = (m: FromSyncer) => port.postMessage(m);
  const db = openPgDb(data.url, quiet, POOLS.syncer);
  class SyncerStore extends PresenceStore {
    override async changesSince(revision: number, limit: number): Promise<PresenceRow[]> {
      const started = performance.now();
      const rows = await super.changesSince(revision, limit);
      send({ kind: 'query', ms: performance.now() - started, rows: rows.length, bytes: Buffer.byteLength(JSON.stringify(rows)) });
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
  // A change is in service on this node once its control plane sends it on (as to the DNS thread).
  const published = (revision: number) => send({ kind: 'published', revision, at: wallNow() });
  const plane = await startControlPlane({
    file: data.file, aliasesDir: `${data.file}.aliases.d`, domains: [], logger,
    post: (m) => {
      if (m.type === 'delta') published(m.delta.version);
      else if (m.type === 'image') published(m.deltas.at(-1)?.version ?? new TopologyImage(m.buffer).version);
    },
    sync: { source: new SqlChangeSource(new SyncerStore(db), { listen: LISTEN }), intervalMs: SYNC_INTERVAL_MS, ttlMs: TTL_MS, maxDropFraction: 0.3, guardHold: 10, clock: systemClock },
  });
  port.on('message', (msg: string) => {
    if (msg !== 'stop') return;
    void (async () => {
      await plane.stop();
      await db.close();
      send({ kind: 'stopped' });
      port.close();
    })();
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

/** bench/heartbeat-probe.ts: one node's heartbeats from a process of its own. */
interface NodeHeartbeat { sent: number; failures: number; p50: number; p99: number; max: number }

interface DaemonResult extends ProbeResult {
  cpuMsPerChange: number;
  /** Its CPU, ms per second: without changes (heartbeats, polling, the probe) and with them. */
  idleCpuMsPerS: number;
  loadCpuMsPerS: number;
}

export interface FleetResult {
  cells: number;
  instances: number;
  syncers: number;
  changesPerSecond: number;
  seconds: number;
  via: 'postgres' | 'pgbouncer';
  layout: 'split' | 'shared';
  listen: boolean;
  registerMs: number;
  snapshotMs: number;
  /** The syncers' first snapshot, all at once: the slowest. */
  syncerSnapshotMs: number;
  nodeHeartbeat: NodeHeartbeat;
  /** The simulated cells' heartbeats, all in this process (its event-loop delay included). */
  heartbeat: Quantiles & { failures: number; perSecond: number };
  syncQuery: Quantiles;
  perSync: { rows: number; bytes: number };
  convergence: Quantiles & { unconverged: number; changes: number };
  cellsExpired: number;
  daemons: DaemonResult[];
  postgres: { transactionsPerSecond: number; cpuPercent: number; connections: number; byPart: Record<string, number>; lockWaits: number; lockWaitQueries: Record<string, number>; active: number };
  machineBusyPercent: number;
  othersCpuPercent: number;
  benchCpuPercent: number;
  benchLoopP99Ms: number;
  loadAverage: number[];
}

async function simulate(): Promise<FleetResult> {
  const dir = mkdtempSync(join(tmpdir(), 'presence-fleet-'));
  let database: TestDatabase | null = null;
  let bouncer: PgBouncer | null = null;
  let watch: PostgresWatch | null = null;
  const dbs: Db[] = [];
  const registrars: Registrar[] = [];
  let reaper: Reaper | null = null;
  const workers: Worker[] = [];
  const daemons: RunningDaemon[] = [];
  const children = new Set<ChildProcess>();
  const timers: NodeJS.Timeout[] = [];
  let cleaned: Promise<void> | null = null;
  const cleanup = () => (cleaned ??= (async () => {
    for (const t of timers) clearTimeout(t);
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.terminate()));
    await Promise.all([...registrars.map((r) => r.stop()), reaper?.stop()]);
    await Promise.all(daemons.map((d) => d.stop()));
    await Promise.all(dbs.map((db) => db.close().catch(() => undefined)));
    await watch?.stop().catch(() => undefined);
    await bouncer?.stop();
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  })());
  cleanUpOnSignals(cleanup, log);

  try {
    process.env.TEST_DATABASE_URL = DATABASE_URL;
    database = await testDatabase();
    const name = new URL(database.url).pathname.slice(1);
    let url = database.url;
    if (VIA_PGBOUNCER) {
      bouncer = await PgBouncer.start(Number(new URL(DATABASE_URL).port || 5432), BOUNCER_POOL);
      const through = new URL(database.url);
      through.port = String(bouncer.port);
      url = through.toString();
    }
    log(`fleet: ${CELLS} cells × ${INSTANCES} instances on ${new URL(DATABASE_URL).host} (database ${name})${VIA_PGBOUNCER ? `, through PgBouncer (transaction pooling, ${BOUNCER_POOL} server connections)` : ''}`);
    for (let i = 0; i < REGISTRAR_POOLS; i++) dbs.push(openPgDb(url, quiet, { max: REGISTRAR_POOL_SIZE, name: 'fleet registrars' }));
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
      source.set(instancesOf(cell, INSTANCES, (j) => h[j]));
      return source;
    });
    for (let cell = 0; cell < CELLS; cell++) {
      registrars.push(new Registrar({
        store: stores[cell % REGISTRAR_POOLS], source: sources[cell], cellId: `cell${cell}`, address: null, ttlMs: TTL_MS,
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
    log(`registered ${CELLS * INSTANCES} rows in ${(registerMs / 1000).toFixed(1)} s`);

    // 2. One full snapshot, on a quiet database.
    started = performance.now();
    await stores[0].snapshot(() => undefined);
    const snapshotMs = performance.now() - started;

    // 3. The syncers and the daemons take their first snapshot and publish it before the clock starts.
    const published: Array<Array<{ revision: number; at: number }>> = [];
    const queries: Array<{ ms: number; rows: number; bytes: number }> = [];
    const workerSnapshots: number[] = [];
    let measuringQueries = false;
    let stopped = 0;
    for (let i = 0; i < SYNCERS; i++) {
      const events: Array<{ revision: number; at: number }> = [];
      published.push(events);
      const worker = new Worker(new URL(import.meta.url), { workerData: { url, file: join(dir, `topology-${i}.json`) } satisfies SyncerData });
      worker.on('message', (m: FromSyncer) => {
        if (m.kind === 'published') events.push({ revision: m.revision, at: m.at });
        else if (m.kind === 'query') {
          if (measuringQueries) queries.push(m);
        } else if (m.kind === 'snapshot') workerSnapshots.push(m.ms);
        else stopped++;
      });
      worker.on('error', (err: Error) => log(`syncer ${i}: ${err.message}`));
      workers.push(worker);
    }
    const names = probeNames(CELLS, INSTANCES);
    const daemonConfig = {
      database: { url }, sync: { enabled: true, interval: SYNC_INTERVAL_MS / 1000 }, registrar: { enabled: false }, reaper: { enabled: false },
      log: { level: 'info' },
    };
    for (let i = 0; i < DAEMONS; i++) daemons.push(await startDaemon({ config: daemonConfig, waitReady: false }));
    await until(() => published.every((e) => e.some((p) => p.revision >= head.revision)), 300_000, 'every syncer publishing the registered fleet');
    for (const daemon of daemons) {
      const client = new UdpClient(daemon.dnsPort);
      try {
        await waitFor(async () => (await client.ask(names[names.length - 1], 1, 500))?.addresses.length === 1, 300_000, 'a daemon answering for the registered fleet');
      } finally {
        client.close();
      }
    }
    log('syncers and daemons have the fleet; heartbeats start');

    // 4. Heartbeats at their cadence (starts spread over one period), the reaper, the
    // syncers polling; then IDLE_SECONDS without changes (the daemons' baseline), then
    // changes at a steady rate, the probe asking the daemons throughout.
    watch = new PostgresWatch(database.url, name);
    let reaperStore = stores[0];
    if (LAYOUT === 'split') {
      dbs.push(openPgDb(url, quiet, POOLS.reaper));
      reaperStore = new TimedStore(dbs[dbs.length - 1]);
    }
    reaper = new Reaper({
      store: reaperStore, owner: crypto.randomUUID(), lockTtlMs: TTL_MS, maxExpireFraction: 0.3, guardHold: 10, clock: systemClock, logger, metrics,
    });
    const period = TTL_MS / 3;
    await Promise.all(registrars.map((r) => new Promise<void>((resolve) => {
      timers.push(setTimeout(() => {
        r.start();
        resolve();
      }, Math.random() * period));
    })));
    reaper.start();
    const probes = daemons.map((d) => probeInChild(d.dnsPort, names, IDLE_SECONDS + SECONDS + 2, dir, children));
    const nodeHeartbeat = probeChild<NodeHeartbeat>('heartbeat-probe.ts', [url, String(INSTANCES)], { HEARTBEAT_PROBE_SECONDS: String(IDLE_SECONDS + SECONDS) }, children);
    await Promise.all([...probes, nodeHeartbeat].map((p) => p.started));
    await watch.start();
    const ticks0 = machineTicks();
    const benchCpu0 = process.cpuUsage();
    const daemonCpu0 = daemons.map((d) => cpuMs(pidOf(d.process)));
    for (const s of stores) s.measuring = true;
    measuringQueries = true;
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const windowStarted = performance.now();
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    const daemonCpuIdle = daemons.map((d, i) => cpuMs(pidOf(d.process)) - daemonCpu0[i]);
    const daemonCpu1 = daemons.map((d) => cpuMs(pidOf(d.process)));
    const idleMs = performance.now() - windowStarted;

    const loadStarted = performance.now();
    let changes = 0;
    await new Promise<void>((resolve) => {
      const next = () => {
        const elapsed = performance.now() - loadStarted;
        if (elapsed >= SECONDS * 1000) {
          resolve();
          return;
        }
        const cell = Math.floor(Math.random() * CELLS);
        const j = Math.floor(Math.random() * PROBED_INDEX);
        health[cell][j] = health[cell][j] === 'running' ? 'failing' : 'running';
        sources[cell].set(instancesOf(cell, INSTANCES, (k) => health[cell][k]));
        changes++;
        timers.push(setTimeout(next, Math.max(0, ((changes + 1) * 1000) / CHANGES_PER_SECOND - elapsed)));
      };
      next();
    });
    const loadMs = performance.now() - loadStarted;
    const daemonCpuLoad = daemons.map((d, i) => cpuMs(pidOf(d.process)) - daemonCpu1[i]);
    const daemonsCpuMs = daemons.reduce((a, d, i) => a + cpuMs(pidOf(d.process)) - daemonCpu0[i], 0);
    lag.disable();
    const benchCpu = process.cpuUsage(benchCpu0);
    const ticks1 = machineTicks();
    for (const s of stores) s.measuring = false;
    measuringQueries = false;
    await watch.stop();
    const commits = stores.flatMap((s) => s.commits);
    const heartbeats = stores.flatMap((s) => s.heartbeats);
    const lastRevision = Math.max(...commits.map((c) => c.revision));
    const drained = await until(() => published.every((e) => e.some((p) => p.revision >= lastRevision)), DRAIN_MS, 'draining').then(() => true, () => false);
    const seen = await Promise.all(probes.map((p) => p.done));
    const ownNode = await nodeHeartbeat.done;

    await Promise.all([...registrars.map((r) => r.stop()), reaper.stop()]);
    for (const w of workers) w.postMessage('stop');
    await until(() => stopped === SYNCERS, 10_000, 'the syncers stopping').catch(() => undefined);

    // Convergence of a change: until the slowest syncer has it in service.
    const convergence: number[] = [];
    let unconverged = 0;
    for (const c of commits) {
      const reached = published.map((events) => events.find((p) => p.revision >= c.revision)?.at);
      const known = reached.filter((at) => at !== undefined);
      if (known.length < reached.length) unconverged++;
      else convergence.push(Math.max(0, ...known.map((at) => at - c.at)));
    }
    const windowMs = idleMs + loadMs;
    const sum = (f: (q: { rows: number; bytes: number }) => number) => queries.reduce((a, q) => a + f(q), 0) / Math.max(1, queries.length);
    return {
      cells: CELLS, instances: INSTANCES, syncers: SYNCERS, changesPerSecond: CHANGES_PER_SECOND, seconds: SECONDS,
      via: VIA_PGBOUNCER ? 'pgbouncer' : 'postgres', layout: LAYOUT, listen: LISTEN,
      registerMs, snapshotMs, syncerSnapshotMs: Math.max(...workerSnapshots),
      nodeHeartbeat: ownNode,
      heartbeat: { ...quantiles(heartbeats), failures: stores.reduce((a, s) => a + s.heartbeatFailures, 0), perSecond: heartbeats.length / (windowMs / 1000) },
      syncQuery: quantiles(queries.map((q) => q.ms)),
      perSync: { rows: sum((q) => q.rows), bytes: sum((q) => q.bytes) },
      convergence: { ...quantiles(convergence), unconverged: drained ? unconverged : Math.max(1, unconverged), changes: commits.length },
      cellsExpired: [...new Set([...stores, reaperStore])].reduce((a, s) => a + s.expired, 0),
      daemons: seen.map((s, i) => ({
        ...s, cpuMsPerChange: (daemonCpuLoad[i] - daemonCpuIdle[i] * (loadMs / idleMs)) / Math.max(1, changes),
        idleCpuMsPerS: daemonCpuIdle[i] / (idleMs / 1000), loadCpuMsPerS: daemonCpuLoad[i] / (loadMs / 1000),
      })),
      postgres: { transactionsPerSecond: watch.committed / watch.seconds, cpuPercent: watch.cpuPercent(), connections: watch.peakConnections, byPart: watch.peakByPart, lockWaits: watch.peakLockWaits, lockWaitQueries: watch.lockWaitQueries, active: watch.peakActive },
      machineBusyPercent: ((ticks1.busy - ticks0.busy) / (ticks1.total - ticks0.total)) * 100,
      // All the machine's busy CPU minus this run's own processes (the probes' few % aside), percent of one core.
      othersCpuPercent: (((ticks1.busy - ticks0.busy) / CLOCK_TICKS_PER_S) * 1000 - (benchCpu.user + benchCpu.system) / 1000 - daemonsCpuMs) / windowMs * 100 - watch.cpuPercent(),
      benchCpuPercent: ((benchCpu.user + benchCpu.system) / 1000 / windowMs) * 100,
      benchLoopP99Ms: lag.percentile(99) / 1e6,
      loadAverage: loadavg(),
    };
  } finally {
    await cleanup();
  }
}

// JSON carries NaN (no samples) as null.
const ms = (n: number | null) => (n === null || Number.isNaN(n) ? '–' : n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(1)} ms`);
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');

/** The run's one table: each figure beside its target (docs/performance.md, "Fleet"). */
function table(r: FleetResult): string {
  const hb = r.heartbeat;
  const nb = r.nodeHeartbeat;
  const cv = r.convergence;
  const unanswered = r.daemons.reduce((a, d) => a + d.unanswered + d.wrong, 0);
  const sent = r.daemons.reduce((a, d) => a + d.sent, 0);
  const rows: Array<[string, string, string, string]> = [
    ['what', 'measured', 'target', ''],
    [`register ${r.cells} cells × ${r.instances} (${r.cells * r.instances} rows, a transaction per cell)`, `${(r.registerMs / 1000).toFixed(1)} s (${Math.round((r.cells * r.instances) / (r.registerMs / 1000))} rows/s)`, '–', ''],
    ['full snapshot (quiet database) / the syncers\' first, all at once (slowest)', `${ms(r.snapshotMs)} / ${ms(r.syncerSnapshotMs)}`, '–', ''],
    [`heartbeat of a node of its own (own process and pool, every 0.1 s), ${nb.sent} p50 / p99 / max; failures`, `${ms(nb.p50)} / ${ms(nb.p99)} / ${ms(nb.max)}; ${nb.failures}`, 'p99 ≤ 100 ms, 0 failures', verdict(nb.p99 <= 100 && nb.failures === 0)],
    [`heartbeats of the ${r.cells} simulated cells (one process, ${REGISTRAR_POOLS * REGISTRAR_POOL_SIZE} connections), ${hb.n} (${hb.perSecond.toFixed(0)}/s)`, `${ms(hb.p50)} / ${ms(hb.p99)} / ${ms(hb.max)}; ${hb.failures}`, 'p99 ≤ 100 ms, 0 failures', verdict(hb.p99 <= 100 && hb.failures === 0)],
    [`sync query (changesSince), ${r.syncQuery.n} p50 / p99`, `${ms(r.syncQuery.p50)} / ${ms(r.syncQuery.p99)}`, 'p99 ≤ 50 ms', verdict(r.syncQuery.p99 <= 50)],
    ['read per sync query: rows / bytes (as JSON)', `${r.perSync.rows.toFixed(1)} / ${Math.round(r.perSync.bytes)}`, 'tracks changes, not the table', ''],
    [`convergence to all ${r.syncers} syncers, ${cv.changes} changes p50 / p99 / max`, `${ms(cv.p50)} / ${ms(cv.p99)} / ${ms(cv.max)}${cv.unconverged ? ` (${cv.unconverged} not everywhere in ${DRAIN_MS / 1000} s)` : ''}`, 'p99 ≤ 1 s (5+ syncers)', verdict(cv.unconverged === 0 && cv.p99 <= 1000 && r.syncers >= 5)],
    [`${r.daemons.length} daemons (dig-like probe, 200 q/s each): unanswered of sent; p99 / max`, `${unanswered} of ${sent}; ${r.daemons.map((d) => `${ms(d.p99)} / ${ms(d.max)}`).join(', ')}`, '0 unanswered', verdict(unanswered === 0)],
    ['CPU per change on a syncing daemon: its CPU ms/s without → with changes ⇒ per change', r.daemons.map((d) => `${d.idleCpuMsPerS.toFixed(0)} → ${d.loadCpuMsPerS.toFixed(0)} ⇒ ${d.cpuMsPerChange.toFixed(2)} ms`).join(', '), 'O(1) in the table size', ''],
    ['cells expired by the reaper during the run', String(r.cellsExpired), '0', verdict(r.cellsExpired === 0)],
    ['PostgreSQL: CPU of its backends (% of one core); connections at peak', `${r.postgres.cpuPercent.toFixed(0)} %; ${r.postgres.connections} (${Object.entries(r.postgres.byPart).map(([k, v]) => `${k} ${v}`).join(', ')})`, '–', ''],
    ['PostgreSQL: transactions/s (statements outside one count one); backend CPU per transaction', `${r.postgres.transactionsPerSecond.toFixed(0)}/s; ${((r.postgres.cpuPercent * 10) / r.postgres.transactionsPerSecond * 1000).toFixed(0)} µs`, '–', ''],
    ['PostgreSQL: most backends active / waiting on a lock at once', `${r.postgres.active} / ${r.postgres.lockWaits}${r.postgres.lockWaits ? ` (${Object.entries(r.postgres.lockWaitQueries).map(([q, n]) => `${n}× ${q}`).join('; ')})` : ''}`, '–', ''],
    ['machine busy (2 cores = 100 %); load average', `${r.machineBusyPercent.toFixed(0)} %; ${r.loadAverage.map((l) => l.toFixed(2)).join(' ')}`, '–', ''],
    ['CPU, % of one core: bench process (registrars, syncers) / its event-loop p99; others on the machine', `${r.benchCpuPercent.toFixed(0)} % / ${ms(r.benchLoopP99Ms)}; ${r.othersCpuPercent.toFixed(0)} %`, '–', ''],
  ];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((row) => row[i].length)));
  return [
    '',
    `fleet: ${r.cells} cells × ${r.instances} instances, heartbeat every ${TTL_MS / 3000} s (jittered), one reaper (${r.layout === 'split' ? 'own pool' : 'on the registrars\' pools'}), `
    + `${r.syncers} syncers (worker threads, sync.interval ${SYNC_INTERVAL_MS / 1000} s, LISTEN/NOTIFY ${r.listen && r.via === 'postgres' ? 'on' : 'off (polling)'}), ${r.daemons.length} daemons, `
    + `${r.changesPerSecond} changes/s for ${r.seconds} s (after ${IDLE_SECONDS} s without), ${r.via === 'pgbouncer' ? `through PgBouncer (transaction pooling, ${BOUNCER_POOL} server connections)` : 'straight to PostgreSQL'}`,
    ...rows.map((row) => row.map((c, i) => c.padEnd(widths[i])).join(' | ').trimEnd()),
    '',
  ].join('\n');
}

/** One run of this file in a process of its own (its own database, memory and workers). */
function runChild(env: Record<string, string>, extra: string[]): Promise<FleetResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--json', ...extra], {
      env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code === 0 && line.startsWith('{')) resolve(JSON.parse(line) as FleetResult);
      else reject(new Error(`fleet run ${JSON.stringify(env)} exited with ${code}`));
    });
  });
}

/** 100, 1,000 and 2,000 cells × 200, and 2,000 × 300 (600,000): how each figure grows against the first. */
async function sweep(extra: string[]): Promise<void> {
  const sizes: Array<[number, number]> = [[100, 200], [1000, 200], [2000, 200], [2000, 300]];
  const results: FleetResult[] = [];
  for (const [cells, instances] of sizes) {
    const r = await runChild({ FLEET_CELLS: String(cells), FLEET_INSTANCES: String(instances) }, extra);
    process.stderr.write(`${JSON.stringify(r)}\n`);
    process.stdout.write(table(r));
    results.push(r);
  }
  const base = results[0];
  const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}×` : '–');
  const lines: string[][] = [['cells × instances', 'rows', 'node hb p99', 'cells hb p99', 'hb fail', 'sync p99', 'rows/sync', 'bytes/sync', 'conv p99', 'daemon CPU/chg', 'unans', 'PG CPU', 'PG xact/s', 'PG conns', 'machine', 'others', 'load 1m']];
  for (const r of results) {
    const unanswered = r.daemons.reduce((a, d) => a + d.unanswered + d.wrong, 0);
    const cpu = r.daemons.reduce((a, d) => a + d.cpuMsPerChange, 0) / r.daemons.length;
    const baseCpu = base.daemons.reduce((a, d) => a + d.cpuMsPerChange, 0) / base.daemons.length;
    lines.push([
      `${r.cells} × ${r.instances}`, `${r.cells * r.instances} (${ratio(r.cells * r.instances, base.cells * base.instances)})`,
      `${ms(r.nodeHeartbeat.p99)} (${ratio(r.nodeHeartbeat.p99, base.nodeHeartbeat.p99)})`,
      `${ms(r.heartbeat.p99)} (${ratio(r.heartbeat.p99, base.heartbeat.p99)})`, String(r.heartbeat.failures + r.nodeHeartbeat.failures),
      `${ms(r.syncQuery.p99)} (${ratio(r.syncQuery.p99, base.syncQuery.p99)})`,
      `${r.perSync.rows.toFixed(1)} (${ratio(r.perSync.rows, base.perSync.rows)})`, `${Math.round(r.perSync.bytes)} (${ratio(r.perSync.bytes, base.perSync.bytes)})`,
      `${ms(r.convergence.p99)} (${ratio(r.convergence.p99, base.convergence.p99)})`, `${cpu.toFixed(2)} ms (${ratio(cpu, baseCpu)})`, String(unanswered),
      `${r.postgres.cpuPercent.toFixed(0)} % (${ratio(r.postgres.cpuPercent, base.postgres.cpuPercent)})`,
      `${r.postgres.transactionsPerSecond.toFixed(0)} (${ratio(r.postgres.transactionsPerSecond, base.postgres.transactionsPerSecond)})`, String(r.postgres.connections),
      `${r.machineBusyPercent.toFixed(0)} %`, `${r.othersCpuPercent.toFixed(0)} %`, r.loadAverage[0].toFixed(2),
    ]);
  }
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  process.stdout.write([
    '',
    `sweep${extra.includes('--pgbouncer') ? ' through PgBouncer' : ''}: each figure and its ratio to the ${base.cells}-cell run (per-sync costs should stay ≈ 1× while the table grows)`,
    ...lines.map((l) => l.map((c, i) => c.padEnd(widths[i])).join(' | ').trimEnd()),
    '',
  ].join('\n'));
}

if (!isMainThread) await syncerNode(workerData as SyncerData);
else if (ARGS.has('--nodes') || ARGS.has('--sweep-nodes')) await (await import('./fleet-nodes.ts')).main(process.argv.slice(2));
else if (ARGS.has('--sweep')) await sweep(VIA_PGBOUNCER ? ['--pgbouncer'] : []);
else {
  const result = await simulate();
  process.stdout.write(ARGS.has('--json') ? `${JSON.stringify(result)}\n` : table(result));
}
