// `npm run bench:fleet -- --nodes N`: a fleet of N syncing nodes, each a real sync client,
// on the deployed topology (docs/performance.md, "Fleet"). The primary is a fresh database
// on TEST_DATABASE_URL's server (default the local 127.0.0.1:5432); PgBouncer in
// transaction pooling (20 server connections) in front of it; a private nats-server with
// JetStream. N nodes (FLEET_INSTANCES instances each, default 10) run spread over child
// processes (bench/fleet-cells.ts): each node has its own registrar (through PgBouncer, a
// pool of one) heart-beating every ttl/3, in one of --procs (default 4) writing processes,
// and its own syncer — the daemon's sync code — with a counting sink, in one of --procs
// reading processes (a daemon runs the two on different threads). One reaper on a connection of its own to the
// primary. Two real daemons follow the same way and answer a DNS probe throughout.
// A real fleet gives every node a machine; here hundreds share a core, so their figures
// carry the delay of their shared event loops. Two probes tell that delay from the
// system's: one of the N nodes runs alone in a process of its own (its convergence and
// cold start are printed beside the fleet's), and bench/heartbeat-probe.ts heartbeats a
// cell of its own every 100 ms from another.
//
// The run, in phases, each measured on its own: registration; a cold start of all N
// syncers at once; FLEET_IDLE_SECONDS (10) with heartbeats only; FLEET_CHANGES (20)
// changes a second for FLEET_SECONDS (20); with the fan-out, NATS stopped for
// FLEET_NATS_OUTAGE_S (30) during changes, then FLEET_AFTER_OUTAGE_S (10) back on it; a
// forced re-snapshot (the database restored from a pg_dump taken before the changes). It
// prints one table beside the targets of docs/performance.md.
//
// `--replica`: the primary and a hot-standby replica of it (pg_basebackup -R) are private
// servers (test/helpers/pg-server.ts), the replica behind a PgBouncer of its own; every
// node's fallback and the daemons' `sync.database_url` read the replica, as docs/presence.md
// deploys a fleet past a few hundred nodes. Without it, the fallback reads the primary
// through the registrars' PgBouncer.
// `--sweep-nodes`: N = 100, 1,000 and 2,000 as runs of their own, then 2,000 × 300
// instances (600,000), and a table of each figure against N = 100.
// `--json`: one run's figures as one JSON line (what the sweep reads).
// Bounded: every wait has a deadline; every process is stopped on exit and on Ctrl-C.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { Registry } from '../src/admin/metrics.ts';
import { systemClock } from '../src/clock.ts';
import { toInstance } from '../src/control/syncer.ts';
import { instanceName } from '../src/image/view.ts';
import { migrate, PresenceStore, Reaper, type CellObservation, type Db } from '../src/presence/index.ts';
import { openPgDb, POOLS } from '../src/presence/pg-db.ts';
import { errorMessage } from '../src/util/error-message.ts';
import { startDaemon, waitFor, type RunningDaemon } from '../test/helpers/daemon.ts';
import { startNats, type NatsServer } from '../test/helpers/nats.ts';
import { PgServer } from '../test/helpers/pg-server.ts';
import { PgBouncer } from '../test/helpers/pgbouncer.ts';
import { freePort, testDatabase, type TestDatabase } from '../test/helpers/postgres.ts';
import { required } from '../test/helpers/required.ts';
import { UdpClient } from '../test/dns/client.ts';
import type { CellsReport, CellsSetup, FromCells, ToCells } from './fleet-cells.ts';
import { FANOUT_PREFIX, probeNames, wallNow } from './fleet-shape.ts';
import { phase, PostgresWatch } from './postgres-watch.ts';
import { probeChild, probeInChild, type ProbeResult } from './probe-process.ts';
import { cleanUpOnSignals, cpuMs, pidOf } from './proc.ts';
import { quantiles, type Quantiles } from './stats.ts';

const run = promisify(execFile);
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const INSTANCES = env('FLEET_INSTANCES', 10);
const CHANGES_PER_SECOND = env('FLEET_CHANGES', 20);
const CHANGE_SECONDS = env('FLEET_SECONDS', 20);
const IDLE_SECONDS = env('FLEET_IDLE_SECONDS', 10);
const NATS_OUTAGE_SECONDS = env('FLEET_NATS_OUTAGE_S', 30);
const AFTER_OUTAGE_SECONDS = env('FLEET_AFTER_OUTAGE_S', 10);
const DAEMONS = 2;
/** PgBouncer's server connections to the primary: what every node's connection shares. */
const BOUNCER_POOL = 20;
const TTL_MS = 15_000;
const SYNC_INTERVAL_MS = 1000;
const REGISTER_CONCURRENCY = 2;
const DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** How long the changes still in flight after a phase may take to reach every node. */
const DRAIN_MS = 15_000;
/** Cold start and re-snapshot: past this, the run reports what it reached and goes on. */
const RESNAPSHOT_DEADLINE_MS = 300_000;
const STEP_DEADLINE_MS = 60_000;

const log = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quiet = pino({ level: 'silent' });

/** How the nodes follow: the fan-out, or (`--sql`) the database through PgBouncer, as without NATS. */
const FOLLOW: CellsSetup['follow'] = process.argv.includes('--sql') ? 'sql' : 'nats';
/** Where the fallback reads: a replica behind its own PgBouncer (`--replica`), or the primary through the registrars' PgBouncer. */
const REPLICA = process.argv.includes('--replica');
const PUBLISHER_CANDIDATES = 3;
/** `sync.snapshot_slots`: database snapshots at once, fleet-wide, by nodes falling back. */
const SNAPSHOT_SLOTS = 4;

/** What a cells process counts: its nodes reading NATS and the database, the snapshots they took, the heartbeats sent. */
type Counters = Omit<Extract<FromCells, { kind: 'counters' }>, 'kind'>;

/** One child process of nodes, and what it told so far. */
class CellsProcess {
  readonly child: ChildProcess;
  /** Each time the lowest revision over its nodes moved (wall time). */
  readonly reached: Array<{ revision: number; at: number }> = [];
  readonly snapshotted = new Map<number, { revision: number; at: number }>();
  readonly commits: Array<{ revision: number; at: number }> = [];
  registeredMs: number | null = null;
  changed: number | null = null;
  private ready = false;
  private lastReport: CellsReport | null = null;
  private counted: Counters | null = null;
  private readonly exited: Promise<void>;

  /** `setup.parts`: its nodes' registrars, syncers, or both (the probe node's process). */
  constructor(readonly setup: CellsSetup) {
    this.child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'fleet-cells.ts')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    this.child.on('message', (m: FromCells) => {
      switch (m.kind) {
        case 'ready':
          this.ready = true;
          break;
        case 'registered':
          this.registeredMs = m.ms;
          break;
        case 'reached':
          this.reached.push({ revision: m.revision, at: m.at });
          break;
        case 'snapshotted':
          this.snapshotted.set(m.mark, { revision: m.revision, at: m.at });
          break;
        case 'commit':
          this.commits.push({ revision: m.revision, at: m.at });
          break;
        case 'changed':
          this.changed = m.changes;
          break;
        case 'report':
          this.lastReport = m.report;
          break;
        case 'counters':
          this.counted = m;
          break;
      }
    });
    this.send({ kind: 'setup', setup });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  send(m: ToCells): void {
    if (!this.alive) throw new Error(`fleet cells process ${this.child.pid} exited (code ${this.child.exitCode}, signal ${this.child.signalCode}); see its stderr above`);
    this.child.send(m);
  }

  async untilReady(): Promise<void> {
    await waitFor(() => this.ready || !this.alive, STEP_DEADLINE_MS, 'a cells process ready');
    if (!this.ready) throw new Error(`fleet cells process ${this.child.pid} exited before it was ready; see its stderr above`);
  }

  async report(): Promise<CellsReport> {
    this.lastReport = null;
    this.send({ kind: 'report' });
    await waitFor(() => this.lastReport !== null, STEP_DEADLINE_MS, 'a cells process report');
    return required(this.lastReport, `a report from fleet cells process ${this.child.pid}`);
  }

  /** How many of its nodes read NATS now, and how many the database; the snapshots they took and the heartbeats they sent so far. */
  async counters(): Promise<Counters> {
    this.counted = null;
    this.send({ kind: 'counters' });
    await waitFor(() => this.counted !== null, STEP_DEADLINE_MS, 'a cells process\'s counters');
    return required(this.counted, `the counters of fleet cells process ${this.child.pid}`);
  }

  /** When every node here first had `revision` or later, from `since` on (wall time). */
  reachedAt(revision: number, since: number): number | undefined {
    return this.reached.find((e) => e.at >= since && e.revision >= revision)?.at;
  }

  async stop(): Promise<void> {
    if (this.alive) this.child.send({ kind: 'stop' } satisfies ToCells);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** nats-server's CPU (/proc, summed over restarts), memory and connections (its monitoring /varz). */
class NatsWatch {
  private readonly cpu = new Map<number, { first: number; last: number }>();
  private timer: NodeJS.Timeout | null = null;
  peakMemMb = 0;
  peakConnections = 0;

  constructor(private readonly nats: NatsServer, private readonly monitorPort: number) {}

  start(): void {
    const tick = () => {
      this.timer = setTimeout(() => void this.sample().finally(() => this.timer && tick()), 1000);
    };
    void this.sample();
    tick();
  }

  private async sample(): Promise<void> {
    const pid = this.nats.pid();
    if (pid !== null) {
      try {
        const now = cpuMs(pid);
        const seen = this.cpu.get(pid) ?? { first: this.cpu.size === 0 ? now : 0, last: now };
        seen.last = now;
        this.cpu.set(pid, seen);
      } catch {
        // Stopped (an outage).
      }
    }
    try {
      const varz = await (await fetch(`http://127.0.0.1:${this.monitorPort}/varz`, { signal: AbortSignal.timeout(1000) })).json() as { mem: number; connections: number };
      this.peakMemMb = Math.max(this.peakMemMb, varz.mem / 2 ** 20);
      this.peakConnections = Math.max(this.peakConnections, varz.connections);
    } catch {
      // Stopped (an outage).
    }
  }

  /** CPU used since the watch started, ms. */
  async cpuMs(): Promise<number> {
    await this.sample();
    let ms = 0;
    for (const { first, last } of this.cpu.values()) ms += last - first;
    return ms;
  }

  stop(): void {
    const timer = this.timer;
    this.timer = null;
    if (timer) clearTimeout(timer);
  }
}

/** The most clients waiting at once and the longest wait; `unanswered`: samples PgBouncer did not answer (not counted as 0 waiting). */
interface PoolerPeak { clients: number; longestMs: number; unanswered: number }

interface PoolerSample { at: number; clients: number; longestMs: number }

/** PgBouncer's queue every second (its SHOW POOLS): clients waiting for a server connection, and the longest wait. */
class PoolerWatch {
  private readonly samples: Array<PoolerSample | { at: number; unanswered: true }> = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly bouncer: PgBouncer) {}

  start(): void {
    const tick = () => {
      this.timer = setTimeout(() => void this.bouncer.waiting().then((w) => {
        this.samples.push({ at: wallNow(), ...w });
      }, () => {
        this.samples.push({ at: wallNow(), unanswered: true });
      }).finally(() => this.timer && tick()), 1000);
    };
    tick();
  }

  /** The most clients waiting at once, and the longest wait, between two wall times. */
  peak(from = 0, to = Infinity): PoolerPeak {
    const within = this.samples.filter((s) => s.at >= from && s.at < to);
    const answered = within.filter((s): s is PoolerSample => !('unanswered' in s));
    return {
      clients: Math.max(0, ...answered.map((s) => s.clients)), longestMs: Math.max(0, ...answered.map((s) => s.longestMs)),
      unanswered: within.length - answered.length,
    };
  }

  stop(): void {
    const timer = this.timer;
    this.timer = null;
    if (timer) clearTimeout(timer);
  }
}

/** The reaper's store, counting the cells it expires (none should be). */
class ReaperStore extends PresenceStore {
  expired = 0;

  override async expireCell(cell: CellObservation): Promise<number | null> {
    const tombstoned = await super.expireCell(cell);
    if (tombstoned !== null) this.expired++;
    return tombstoned;
  }
}

interface Convergence extends Quantiles {
  changes: number;
  /** Changes that did not reach every node within the drain. */
  unconverged: number;
}

/** A phase: the primary's backends' CPU (% of one core) and transactions per second; NATS's and the publishers' CPU. */
interface PrimaryPhase { seconds: number; cpuPercent: number; commitsPerSecond: number; heartbeatsPerSecond: number; natsCpuPercent: number; publisherCpuPercent: number }

/** A cold start or a re-snapshot: how long until every node served the topology, and until the probe node did. */
interface Resnapshot { ms: number | null; aloneMs: number | null; primary: PrimaryPhase; nodesCpuMsPerNode: number; rows: number }

/** bench/heartbeat-probe.ts: one cell's heartbeats from a process of its own. */
interface AloneHeartbeat { sent: number; failures: number; p50: number; p99: number; max: number }

export interface NodesResult {
  nodes: number;
  procs: number;
  instances: number;
  follow: CellsSetup['follow'];
  /** The fallback read a replica (`--replica`). */
  replica: boolean;
  registerMs: number;
  /** Cells whose registrar had not claimed them a minute after the heartbeats began (the run goes on without them). */
  unregistered: number;
  coldStart: Resnapshot;
  resnapshot: Resnapshot & { restoreMs: number };
  idle: PrimaryPhase;
  load: PrimaryPhase & { changes: number };
  /** Primary work per change: backend CPU ms and transactions, the idle rate taken out. */
  perChange: { cpuMs: number; commits: number; publisherCpuMs: number };
  convergence: Convergence;
  /** The same, to the probe node alone. */
  aloneConvergence: Convergence;
  /** NATS stopped during changes: convergence meanwhile and after (to every node; to the probe node); how long until every node read NATS again. */
  outage: {
    fallback: Convergence; after: Convergence; aloneFallback: Convergence; aloneAfter: Convergence; backOnNatsMs: number | null;
    /** The primary while NATS was down, and PgBouncer's queue then. */
    primary: PrimaryPhase; pooler: PoolerPeak;
    /** With `--replica`: the replica every node read meanwhile (its backends' CPU, transactions/s) and its PgBouncer's queue. */
    replica: { cpuPercent: number; commitsPerSecond: number; pooler: PoolerPeak } | null;
    /** Snapshots the nodes took from NATS's stop to the end of the phase (none is needed: every node keeps its position). */
    snapshots: number;
  } | null;
  /** PgBouncer's queue over the whole run. */
  pooler: PoolerPeak;
  /** Candidates that held the publisher lock in turn. */
  publishers: number;
  heartbeat: Quantiles & { failures: number };
  aloneHeartbeat: AloneHeartbeat | null;
  cellsExpired: number;
  daemons: Array<ProbeResult & { lost: number; extra: number }>;
  primaryConnections: { peak: number; byPart: Record<string, number> };
  nats: { peakMemMb: number; peakConnections: number };
  processes: Array<{ parts: CellsSetup['parts']; nodes: number; peakRssMb: number }>;
}

/** Every figure of one change phase: for each commit, until the slowest of `reachers`' nodes all had it. */
function convergence(procs: CellsProcess[], from: number, to: number, reachers: CellsProcess[]): Convergence {
  const commits = procs.flatMap((p) => p.commits.filter((c) => c.at >= from && c.at < to));
  const times: number[] = [];
  let unconverged = 0;
  for (const c of commits) {
    const reached = reachers.map((p) => p.reachedAt(c.revision, from));
    const known = reached.filter((at) => at !== undefined);
    if (known.length < reached.length) unconverged++;
    else times.push(Math.max(0, ...known.map((at) => at - c.at)));
  }
  return { ...quantiles(times), changes: commits.length, unconverged };
}

/** Records of the database's live rows (name and address) the daemon does not answer with, and the reverse. */
async function recordsLost(daemon: RunningDaemon, store: PresenceStore, when: string): Promise<{ lost: number; extra: number }> {
  const head = (await store.head()).revision;
  // A daemon still behind is compared all the same: what it lacks counts as lost.
  await waitFor(async () => {
    const { revision } = (await (await daemon.admin('/v1/status')).json()) as { revision: number | null };
    return revision !== null && revision >= head;
  }, DRAIN_MS, 'a daemon at the head revision')
    .catch((err: unknown) => log(errorMessage(err)));
  const compare = async () => {
    const answer = (await (await daemon.admin('/v1/records?limit=100000000')).json()) as { records: Array<{ name: string; ip: string }> };
    const served = new Set(answer.records.map((r) => `${r.name} ${r.ip}`));
    const live = new Set<string>();
    await store.snapshot((row) => live.add(`${instanceName(toInstance(row))} ${row.ip}`));
    return { lost: [...live].filter((r) => !served.has(r)), extra: [...served].filter((r) => !live.has(r)) };
  };
  const first = await compare();
  if (first.lost.length || first.extra.length) {
    // Said with what the daemon was doing, and checked again later: late, or lost for good.
    const status = (await (await daemon.admin('/v1/status')).json()) as { revision: number | null; sync?: unknown };
    log(`${when}: daemon ${daemon.dnsPort}: ${first.lost.length} lost (e.g. ${first.lost.slice(0, 3).join(', ')}), ${first.extra.length} extra (e.g. ${first.extra.slice(0, 3).join(', ')}); `
      + `database head ${head}, daemon at ${status.revision}, sync ${JSON.stringify(status.sync)}`);
    const warnings = [...new Set(daemon.logs.filter((l) => /"level":(40|50|60)/.test(l)).map((l) => l.replace(/"time":\d+,/, '')))];
    log(`${when}: daemon ${daemon.dnsPort}'s warnings (${warnings.length} distinct), the last 15:\n${warnings.slice(-15).join('\n')}`);
    await sleep(DRAIN_MS);
    const again = await compare();
    log(`${when}: daemon ${daemon.dnsPort}, ${DRAIN_MS / 1000} s later: ${again.lost.length} lost, ${again.extra.length} extra`);
  }
  return { lost: first.lost.length, extra: first.extra.length };
}

async function simulate(nodes: number, procCount: number): Promise<NodesResult> {
  const dir = mkdtempSync(join(tmpdir(), 'presence-fleet-nodes-'));
  // What the run has started, for the cleanup: set as each part starts.
  let database: TestDatabase | null = null;
  let bouncer: PgBouncer | null = null;
  /** With `--replica`: the private primary, its replica and the replica's PgBouncer. */
  let servers: { primary: PgServer; replica: PgServer | null } | null = null;
  let replicaBouncer: PgBouncer | null = null;
  let replicaWatch: PostgresWatch | null = null;
  let replicaPoolerWatch: PoolerWatch | null = null;
  let nats: NatsServer | null = null;
  let natsWatch: NatsWatch | null = null;
  let poolerWatch: PoolerWatch | null = null;
  let watch: PostgresWatch | null = null;
  let publishers: ReturnType<typeof probeChild<{ publishers: number }>> | null = null;
  let reaper: Reaper | null = null;
  const dbs: Db[] = [];
  const procs: CellsProcess[] = [];
  const daemons: RunningDaemon[] = [];
  const children = new Set<ChildProcess>();
  let cleaned: Promise<void> | null = null;
  // Each step runs whatever the one before did: a failed stop must not leave a server behind.
  const step = (what: string, fn: () => unknown) => Promise.resolve().then(fn).catch((err: unknown) => log(`cleanup: ${what}: ${errorMessage(err)}`));
  const cleanup = () => (cleaned ??= (async () => {
    for (const c of children) c.kill('SIGKILL');
    await step('the nodes', () => Promise.all(procs.map((p) => p.stop())));
    await step('the reaper', () => reaper?.stop());
    await step('the daemons', () => Promise.all(daemons.map((d) => d.stop())));
    await step('the pools', () => Promise.all(dbs.map((db) => db.close())));
    natsWatch?.stop();
    poolerWatch?.stop();
    replicaPoolerWatch?.stop();
    await step('the watch', () => watch?.stop());
    await step('the replica\'s watch', () => replicaWatch?.stop());
    await step('nats-server', () => nats?.stop());
    await step('PgBouncer', () => bouncer?.stop());
    await step('the replica\'s PgBouncer', () => replicaBouncer?.stop());
    await step('the database', () => (servers ? undefined : database?.drop()));
    await step('the replica', () => servers?.replica?.destroy());
    await step('the primary', () => servers?.primary.destroy());
    rmSync(dir, { recursive: true, force: true });
  })());
  cleanUpOnSignals(cleanup, log);

  try {
    let primaryUrl = DATABASE_URL;
    if (REPLICA) {
      servers = { primary: await PgServer.create(), replica: null };
      primaryUrl = servers.primary.url;
    }
    process.env.TEST_DATABASE_URL = primaryUrl;
    database = await testDatabase();
    const directUrl = database.url;
    const name = new URL(directUrl).pathname.slice(1);
    const through = (port: number) => {
      const pooled = new URL(directUrl);
      pooled.port = String(port);
      return pooled.toString();
    };
    // Each node holds two client connections (registrar, follower); the daemons a few more.
    bouncer = await PgBouncer.start(Number(new URL(primaryUrl).port || 5432), BOUNCER_POOL, 2 * nodes + 100);
    const url = through(bouncer.port);
    const pooler = new PoolerWatch(bouncer);
    poolerWatch = pooler;
    pooler.start();
    // The fallback's database: the replica through its PgBouncer, or the registrars' PgBouncer.
    let fallbackUrl = url;
    let fallbackPooler: PoolerWatch | null = null;
    if (servers) {
      const replica = await PgServer.replicaOf(servers.primary);
      servers.replica = replica;
      // The fallback's connection of each node, and the daemons'.
      replicaBouncer = await PgBouncer.start(replica.port, BOUNCER_POOL, nodes + 100);
      fallbackUrl = through(replicaBouncer.port);
      fallbackPooler = new PoolerWatch(replicaBouncer);
      replicaPoolerWatch = fallbackPooler;
      fallbackPooler.start();
    }
    const monitorPort = await freePort();
    const natsServer = await startNats({ own: true, args: ['-js', '-sd', join(dir, 'jetstream'), '-m', String(monitorPort)] });
    nats = natsServer;
    const natsServerWatch = new NatsWatch(natsServer, monitorPort);
    natsWatch = natsServerWatch;
    natsServerWatch.start();
    log(`fleet of nodes: ${nodes} nodes × ${INSTANCES} instances in ${procCount} processes, following ${FOLLOW === 'nats' ? 'the fan-out (NATS)' : 'SQL through PgBouncer'}; `
      + `database ${name} on ${new URL(primaryUrl).host}${servers?.replica ? `, the fallback on its replica (port ${servers.replica.port})` : ''}`);

    const direct = openPgDb(directUrl, quiet, POOLS.reaper);
    dbs.push(direct);
    await migrate(direct);
    const reaperStore = new ReaperStore(direct);
    const primaryWatch = new PostgresWatch(directUrl, name);
    watch = primaryWatch;
    await primaryWatch.start();
    if (servers?.replica) {
      const replicaDirect = new URL(directUrl);
      replicaDirect.port = String(servers.replica.port);
      // The database reaches the replica with the migration's WAL.
      await waitFor(async () => (await required(servers?.replica, 'the replica').sql<{ n: number }>('SELECT count(*)::int AS n FROM pg_database WHERE datname = $1', [name])).at(0)?.n === 1,
        STEP_DEADLINE_MS, 'the bench database on the replica');
      replicaWatch = new PostgresWatch(replicaDirect.toString(), name);
      await replicaWatch.start();
    }
    if (FOLLOW === 'nats') {
      publishers = probeChild<{ publishers: number }>('fleet-publishers.ts', [directUrl, natsServer.url, String(PUBLISHER_CANDIDATES)], {}, children, 'publishing');
      void publishers.done.catch(() => undefined);
      await Promise.race([publishers.started, sleep(STEP_DEADLINE_MS).then(() => Promise.reject(new Error('no publisher candidate took the lock within a minute')))]);
    }

    // The nodes: cell 0 alone in a process (the probe node); of cell c > 0, the registrar in
    // writing process c mod P and the syncer in reading process c mod P.
    const cellsOf = (cells: number[], parts: CellsSetup['parts']) => new CellsProcess({
      url, fallbackUrl, natsUrl: natsServer.url, follow: FOLLOW, cells, parts, instances: INSTANCES, ttlMs: TTL_MS, syncIntervalMs: SYNC_INTERVAL_MS, snapshotSlots: SNAPSHOT_SLOTS,
      registerConcurrency: REGISTER_CONCURRENCY,
    });
    const alone = cellsOf([0], 'both');
    procs.push(alone);
    for (const parts of ['write', 'read'] as const) {
      for (let p = 0; p < procCount; p++) procs.push(cellsOf(Array.from({ length: nodes }, (_, c) => c).filter((c) => c > 0 && c % procCount === p), parts));
    }
    /** The processes that make the changes (the registrars'), and those whose syncers follow them. */
    const makers = procs.filter((p) => p.setup.parts === 'write');
    const followers = procs.filter((p) => p.setup.parts !== 'write');
    for (const p of procs) children.add(p.child);
    await Promise.all(procs.map((p) => p.untilReady()));

    // 1. Registration: every cell claimed and written once.
    let started = performance.now();
    for (const p of procs) p.send({ kind: 'register' });
    await waitFor(() => procs.every((p) => p.registeredMs !== null), STEP_DEADLINE_MS + nodes * INSTANCES, 'every cell registered');
    for (const p of procs) p.send({ kind: 'heartbeat' });
    // A registrar whose first write failed (PgBouncer refusing a burst of new clients) writes its rows on a later pass.
    let liveRows = 0;
    let unregistered = 0;
    await waitFor(async () => {
      const { rows } = await direct.query<{ n: number }>('SELECT count(*)::int AS n FROM presences WHERE NOT deleted');
      liveRows = rows.at(0)?.n ?? 0;
      return liveRows === nodes * INSTANCES;
    }, STEP_DEADLINE_MS, `all ${nodes * INSTANCES} rows registered (see the registrar warnings above)`).catch(async (err: unknown) => {
      const { rows } = await direct.query<{ cell: string; live: number; rows: number; claimed: boolean }>(
        `SELECT 'cell' || c AS cell, count(p.id) FILTER (WHERE NOT p.deleted)::int AS live, count(p.id)::int AS rows,
                EXISTS (SELECT 1 FROM cells WHERE cell_id = 'cell' || c) AS claimed
           FROM generate_series(0, $1 - 1) c LEFT JOIN presences p ON p.cell_id = 'cell' || c
          GROUP BY c HAVING count(p.id) FILTER (WHERE NOT p.deleted) <> $2`, [nodes, INSTANCES]);
      // Reported, and the run goes on with the cells that did register (say which did not).
      unregistered = rows.length;
      log(`${errorMessage(err)}: ${liveRows} live rows; cells short: ${JSON.stringify(rows)}`);
    });
    const registerMs = performance.now() - started;
    log(`registered ${nodes * INSTANCES} rows in ${(registerMs / 1000).toFixed(1)} s`);
    // Its cell (and rows) come on top of the fleet's, from here to the end of the run (SIGTERM).
    const heartbeatProbe = probeChild<AloneHeartbeat>('heartbeat-probe.ts', [url, String(INSTANCES)], { HEARTBEAT_PROBE_SECONDS: '3600' }, children);
    void heartbeatProbe.done.catch(() => undefined);
    await heartbeatProbe.started;
    reaper = new Reaper({
      store: reaperStore, owner: crypto.randomUUID(), lockTtlMs: TTL_MS, maxExpireFraction: 0.3, guardHold: 10, clock: systemClock,
      logger: pino({ level: 'warn' }, pino.destination(2)), metrics: new Registry(),
    });
    reaper.start();

    // 2. The daemons, serving the fleet before the probe starts.
    const names = probeNames(nodes, INSTANCES);
    const daemonConfig = {
      database: { url },
      sync: { enabled: true, interval: SYNC_INTERVAL_MS / 1000, database_url: fallbackUrl, ...(FOLLOW === 'nats' ? { nats_url: natsServer.url, nats_prefix: FANOUT_PREFIX, snapshot_slots: SNAPSHOT_SLOTS } : {}) },
      registrar: { enabled: false }, reaper: { enabled: false }, log: { level: 'info' },
    };
    for (let i = 0; i < DAEMONS; i++) daemons.push(await startDaemon({ config: daemonConfig, waitReady: false }));
    for (const daemon of daemons) {
      const client = new UdpClient(daemon.dnsPort);
      try {
        await waitFor(async () => (await client.ask(names[names.length - 1], 1, 500))?.addresses.length === 1, RESNAPSHOT_DEADLINE_MS, 'a daemon answering for the registered fleet');
      } finally {
        client.close();
      }
    }
    // The probe runs to the end of the run (SIGTERM), its deadline far past it.
    const probes = daemons.map((d) => probeInChild(d.dnsPort, names, 3600, dir, children));
    // On an early exit the cleanup kills them: that is no unhandled rejection.
    void Promise.allSettled(probes.map((p) => p.done));
    await Promise.all(probes.map((p) => p.started));

    /** Marks the primary, NATS and the nodes' processes, to cut the run into phases. */
    const cellsCpu = () => followers.reduce((a, p) => a + cpuMs(pidOf(p.child)), 0);
    const publishersCpu = () => (publishers ? cpuMs(pidOf(publishers.child)) : 0);
    const markAll = async () => ({
      primary: await primaryWatch.mark(), replica: (await replicaWatch?.mark()) ?? null, nats: await natsServerWatch.cpuMs(), cells: cellsCpu(), publishers: publishersCpu(),
      heartbeats: (await Promise.all(procs.map((p) => p.counters()))).reduce((a, c) => a + c.heartbeats, 0),
    });
    type Marks = Awaited<ReturnType<typeof markAll>>;
    const primaryPhase = (a: Marks, b: Marks): PrimaryPhase => {
      const p = phase(a.primary, b.primary);
      const percent = (ms: number) => (ms / (p.seconds * 1000)) * 100;
      return {
        seconds: p.seconds, cpuPercent: p.cpuPercent, commitsPerSecond: p.commits / p.seconds, heartbeatsPerSecond: (b.heartbeats - a.heartbeats) / p.seconds,
        natsCpuPercent: percent(b.nats - a.nats), publisherCpuPercent: percent(b.publishers - a.publishers),
      };
    };
    /** When the probe node put a snapshot in service after `mark` and reached `revision`, from `since` on (ms), or null. */
    const aloneResnapshotted = (mark: number, revision: number, since: number): number | null => {
      const at = Math.max(alone.snapshotted.get(mark)?.at ?? Infinity, alone.reachedAt(revision, since) ?? Infinity);
      return Number.isFinite(at) ? at - since : null;
    };
    /** Every node put a snapshot in service after `mark` and reached `revision` (wall time), or null past the deadline. */
    const resnapshotted = async (mark: number, revision: number, since: number): Promise<number | null> => {
      const done = () => followers.every((p) => p.snapshotted.has(mark) && p.reachedAt(revision, since) !== undefined);
      const ok = await waitFor(done, RESNAPSHOT_DEADLINE_MS, `every node serving revision ${revision}`).then(() => true, (err: unknown) => (log(errorMessage(err)), false));
      if (!ok) return null;
      return Math.max(...followers.flatMap((p) => [
        required(p.snapshotted.get(mark), `the snapshot after mark ${mark} of fleet cells process ${p.child.pid}`).at,
        required(p.reachedAt(revision, since), `revision ${revision} reached by fleet cells process ${p.child.pid}`),
      ]));
    };

    // 3. Cold start: every node's syncer at once.
    const headAtStart = (await reaperStore.head()).revision;
    let before = await markAll();
    let since = wallNow();
    for (const p of procs) p.send({ kind: 'follow', mark: 1 });
    const coldDone = await resnapshotted(1, headAtStart, since);
    let after = await markAll();
    const coldStart: Resnapshot = {
      ms: coldDone === null ? null : coldDone - since, aloneMs: aloneResnapshotted(1, headAtStart, since), primary: primaryPhase(before, after),
      nodesCpuMsPerNode: (after.cells - before.cells) / nodes, rows: headAtStart,
    };
    log(`cold start: ${coldStart.ms === null ? 'incomplete' : `${(coldStart.ms / 1000).toFixed(1)} s`}`);

    // The database as it is before the changes: the forced re-snapshot restores it.
    const dump = join(dir, 'before-changes.dump');
    await run('pg_dump', ['-Fc', '-f', dump, '-d', directUrl], { timeout: STEP_DEADLINE_MS });

    // 4. Idle: heartbeats, the reaper, the followers with nothing to follow.
    before = await markAll();
    await sleep(IDLE_SECONDS * 1000);
    after = await markAll();
    const idle = primaryPhase(before, after);

    // 5. Changes at a steady rate, through random cells' registrars.
    const changePhase = async (seconds: number, during?: () => Promise<void>) => {
      for (const p of makers) p.changed = null;
      for (const p of makers) p.send({ kind: 'changes', perSecond: CHANGES_PER_SECOND / makers.length, seconds });
      await during?.();
      await waitFor(() => makers.every((p) => p.changed !== null), seconds * 1000 + STEP_DEADLINE_MS, 'the changes made');
      const last = Math.max(0, ...procs.flatMap((p) => p.commits.map((c) => c.revision)));
      await waitFor(() => followers.every((p) => p.reachedAt(last, 0) !== undefined), DRAIN_MS, 'every node at the last change').catch((err: unknown) => log(errorMessage(err)));
      return makers.reduce((a, p) => a + required(p.changed, `the changes fleet cells process ${p.child.pid} made`), 0);
    };
    before = await markAll();
    since = wallNow();
    const changes = await changePhase(CHANGE_SECONDS);
    after = await markAll();
    const load = { ...primaryPhase(before, after), changes };
    const conv = convergence(procs, since, wallNow(), followers);
    const aloneConv = convergence(procs, since, wallNow(), [alone]);
    const loadPrimary = phase(before.primary, after.primary);
    const idleRate = { cpuMs: (idle.cpuPercent / 100) * 1000, commits: idle.commitsPerSecond - idle.heartbeatsPerSecond };
    // Heartbeats are one transaction each, counted where they are sent, and taken out exactly:
    // at 2,000 nodes they are 400/s, and a few percent's drift between phases would read as
    // the changes' work.
    const perChange = {
      cpuMs: (loadPrimary.cpuMs - idleRate.cpuMs * loadPrimary.seconds) / Math.max(1, changes),
      commits: (loadPrimary.commits - load.heartbeatsPerSecond * loadPrimary.seconds - idleRate.commits * loadPrimary.seconds) / Math.max(1, changes),
      publisherCpuMs: ((load.publisherCpuPercent - idle.publisherCpuPercent) * 10 * loadPrimary.seconds) / Math.max(1, changes),
    };
    log(`changes: ${changes}, convergence p99 ${conv.p99.toFixed(0)} ms`);

    // 6. NATS stopped during changes (the nodes fall back to SQL), then back.
    let outage: NodesResult['outage'] = null;
    if (FOLLOW === 'nats') {
      let stoppedAt = 0;
      let restartedAt = 0;
      let down = null as Marks | null;
      let up = null as Marks | null;
      // Watched from the restart on, while the changes go on.
      let backOnNats: Promise<number | null> = Promise.resolve(null);
      const snapshotsTaken = async () => (await Promise.all(followers.map((p) => p.counters()))).reduce((a, m) => a + m.snapshots, 0);
      const snapshotsBefore = await snapshotsTaken();
      await changePhase(NATS_OUTAGE_SECONDS + AFTER_OUTAGE_SECONDS, async () => {
        await natsServer.kill();
        stoppedAt = wallNow();
        down = await markAll();
        await sleep(NATS_OUTAGE_SECONDS * 1000);
        up = await markAll();
        await natsServer.restart();
        restartedAt = wallNow();
        backOnNats = waitFor(async () => (await Promise.all(followers.map((p) => p.counters()))).every((m) => m.fallback === 0), STEP_DEADLINE_MS, 'every node reading NATS again')
          .then(() => wallNow() - restartedAt, (err: unknown) => (log(errorMessage(err)), null));
      });
      const back = await backOnNats;
      const now = wallNow();
      const [downMarks, upMarks] = [required(down, 'the marks when NATS stopped'), required(up, 'the marks before NATS restarted')];
      const replicaPhase = downMarks.replica && upMarks.replica ? phase(downMarks.replica, upMarks.replica) : null;
      outage = {
        fallback: convergence(procs, stoppedAt, restartedAt, followers), after: convergence(procs, restartedAt, now, followers),
        aloneFallback: convergence(procs, stoppedAt, restartedAt, [alone]), aloneAfter: convergence(procs, restartedAt, now, [alone]), backOnNatsMs: back,
        primary: primaryPhase(downMarks, upMarks), pooler: pooler.peak(stoppedAt, restartedAt),
        replica: replicaPhase && fallbackPooler
          ? { cpuPercent: replicaPhase.cpuPercent, commitsPerSecond: replicaPhase.commits / replicaPhase.seconds, pooler: fallbackPooler.peak(stoppedAt, restartedAt) }
          : null,
        snapshots: (await snapshotsTaken()) - snapshotsBefore,
      };
    }
    const lostBefore = await Promise.all(daemons.map((d) => recordsLost(d, reaperStore, 'after the NATS outage')));

    // 7. Forced re-snapshot: the database restored from the dump taken before the changes.
    before = await markAll();
    for (const p of procs) p.send({ kind: 'mark', mark: 2 });
    // From the restore's start: a node may see its commit before pg_restore has exited.
    since = wallNow();
    started = performance.now();
    await run('pg_restore', ['--clean', '--if-exists', '--single-transaction', '-d', directUrl, dump], { timeout: STEP_DEADLINE_MS });
    const restoreMs = performance.now() - started;
    const restoredHead = (await reaperStore.head()).revision;
    const restoreDone = await resnapshotted(2, restoredHead, since);
    after = await markAll();
    const resnapshot = {
      ms: restoreDone === null ? null : restoreDone - since, aloneMs: aloneResnapshotted(2, restoredHead, since), restoreMs, primary: primaryPhase(before, after),
      nodesCpuMsPerNode: (after.cells - before.cells) / nodes, rows: restoredHead,
    };
    log(`re-snapshot after a restore: ${resnapshot.ms === null ? 'incomplete' : `${(resnapshot.ms / 1000).toFixed(1)} s`}`);
    const lostAfter = await Promise.all(daemons.map((d) => recordsLost(d, reaperStore, 'after the restore')));

    // 8. The probe's verdict and every process's figures.
    for (const p of [...probes, publishers, heartbeatProbe]) p?.child.kill('SIGTERM');
    const seen = await Promise.all(probes.map((p) => p.done));
    const aloneHeartbeat = await heartbeatProbe.done.catch((err: unknown) => (log(errorMessage(err)), null));
    const published = (await publishers?.done)?.publishers ?? 0;
    const reports = await Promise.all(procs.map((p) => p.report()));
    const heartbeats = reports.flatMap((r) => r.heartbeats);
    return {
      nodes, procs: procCount, instances: INSTANCES, follow: FOLLOW, replica: servers !== null, publishers: published, registerMs, unregistered, coldStart, resnapshot, idle, load, perChange,
      convergence: conv, aloneConvergence: aloneConv, outage,
      heartbeat: { ...quantiles(heartbeats), failures: reports.reduce((a, r) => a + r.heartbeatFailures, 0) }, aloneHeartbeat,
      cellsExpired: reaperStore.expired,
      daemons: seen.map((s, i) => ({ ...s, lost: lostBefore[i].lost + lostAfter[i].lost, extra: lostBefore[i].extra + lostAfter[i].extra })),
      primaryConnections: { peak: primaryWatch.peakConnections, byPart: primaryWatch.peakByPart }, pooler: pooler.peak(),
      nats: { peakMemMb: natsServerWatch.peakMemMb, peakConnections: natsServerWatch.peakConnections },
      processes: reports.map((r, i) => ({ parts: procs[i].setup.parts, nodes: r.nodes, peakRssMb: r.peakRssMb })),
    };
  } finally {
    await cleanup();
  }
}

// JSON carries NaN (no samples) as null.
const ms = (n: number | null) => (n === null || Number.isNaN(n) ? '–' : n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(1)} ms`);
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
const pct = (n: number) => `${n.toFixed(0)} %`;
const pooled = (p: PoolerPeak) => `${p.clients}, ${ms(p.longestMs)}${p.unanswered ? ` (${p.unanswered} samples unanswered)` : ''}`;
const quants = (c: Convergence) => `${ms(c.p50)} / ${ms(c.p99)} / ${ms(c.max)} of ${c.changes}${c.unconverged ? ` (${c.unconverged} not everywhere in ${DRAIN_MS / 1000} s)` : ''}`;

/** The run's one table: each figure beside its target (docs/performance.md, "Fleet"). */
export function table(r: NodesResult): string {
  const unanswered = r.daemons.reduce((a, d) => a + d.unanswered + d.wrong, 0);
  const sent = r.daemons.reduce((a, d) => a + d.sent, 0);
  const lost = r.daemons.reduce((a, d) => a + d.lost, 0);
  const extra = r.daemons.reduce((a, d) => a + d.extra, 0);
  const convergenceTarget = r.follow === 'nats' ? 250 : 2000;
  const resnapshotRow = (what: string, s: Resnapshot): [string, string, string, string] => [
    `${what}: every node serving ${s.rows} rows (the probe node alone); primary CPU (% of a core), transactions/s; NATS CPU; nodes' CPU per node`,
    `${ms(s.ms)} (${ms(s.aloneMs)}); ${pct(s.primary.cpuPercent)}, ${s.primary.commitsPerSecond.toFixed(0)}/s; ${pct(s.primary.natsCpuPercent)}; ${ms(s.nodesCpuMsPerNode)}`,
    '≤ 120 s, primary not saturated', verdict(s.ms !== null && s.ms <= 120_000 && s.primary.cpuPercent < 80),
  ];
  const rows: Array<[string, string, string, string]> = [
    ['what', 'measured', 'target', ''],
    [`register ${r.nodes} cells × ${r.instances} (${r.nodes * r.instances} rows); cells not registered a minute after the heartbeats began`, `${ms(r.registerMs)}; ${r.unregistered}`, '0 not registered', verdict(r.unregistered === 0)],
    resnapshotRow(`cold start of all ${r.nodes} nodes at once`, r.coldStart),
    [`primary at idle (${r.idle.seconds.toFixed(0)} s, heartbeats only): CPU, transactions/s (of them heartbeats); NATS CPU`,
      `${pct(r.idle.cpuPercent)}, ${r.idle.commitsPerSecond.toFixed(0)}/s (${r.idle.heartbeatsPerSecond.toFixed(0)}/s); ${pct(r.idle.natsCpuPercent)}`, 'sync load independent of N', ''],
    [`primary with ${r.load.changes} changes (${(r.load.changes / r.load.seconds).toFixed(0)}/s): CPU, transactions/s; NATS CPU; publisher CPU`, `${pct(r.load.cpuPercent)}, ${r.load.commitsPerSecond.toFixed(0)}/s; ${pct(r.load.natsCpuPercent)}; ${pct(r.load.publisherCpuPercent)}`, '–', ''],
    ['primary per change (idle rate taken out; heartbeats counted out of the transactions): backend CPU, transactions; the publisher\'s CPU', `${ms(r.perChange.cpuMs)}, ${r.perChange.commits.toFixed(1)}; ${ms(r.perChange.publisherCpuMs)}`, '≤ 1.2× N = 100 (--sweep-nodes)', ''],
    [`convergence of a change to all ${r.nodes} nodes, p50 / p99 / max`, quants(r.convergence), `p99 ≤ ${ms(convergenceTarget)}`, verdict(r.convergence.unconverged === 0 && r.convergence.p99 <= convergenceTarget)],
    ['  the same to the probe node, alone in its process', quants(r.aloneConvergence), `p99 ≤ ${ms(convergenceTarget)} (one node)`, verdict(r.aloneConvergence.unconverged === 0 && r.aloneConvergence.p99 <= convergenceTarget)],
    ...(r.outage
      ? [
          ['NATS stopped: convergence via the fallback, p50 / p99 / max', quants(r.outage.fallback), 'p99 ≤ 2 s', verdict(r.outage.fallback.unconverged === 0 && r.outage.fallback.p99 <= 2000)],
          ['NATS back: convergence, p50 / p99 / max; every node reading NATS again after', `${quants(r.outage.after)}; ${ms(r.outage.backOnNatsMs)}`, 'p99 ≤ 2 s (until it reconnects, a node reads the database)', verdict(r.outage.after.unconverged === 0 && r.outage.after.p99 <= 2000)],
          [`primary while NATS was stopped (${r.outage.replica ? 'heartbeats and changes; the nodes on the replica' : 'every node on it'}): CPU, transactions/s; PgBouncer: clients waiting at peak, longest wait`,
            `${pct(r.outage.primary.cpuPercent)}, ${r.outage.primary.commitsPerSecond.toFixed(0)}/s; ${pooled(r.outage.pooler)}`, 'primary not saturated', verdict(r.outage.primary.cpuPercent < 80)],
          ...(r.outage.replica
            ? [['  the replica meanwhile (every node\'s fallback): CPU, transactions/s; its PgBouncer: clients waiting at peak, longest wait',
                `${pct(r.outage.replica.cpuPercent)}, ${r.outage.replica.commitsPerSecond.toFixed(0)}/s; ${pooled(r.outage.replica.pooler)}`, '–', '']] satisfies Array<[string, string, string, string]>
            : []),
          ['  snapshots the nodes took from the stop to the end of the phase', String(r.outage.snapshots), '0 (positions kept)', verdict(r.outage.snapshots === 0)],
          ['  the probe node alone: NATS stopped; NATS back', `${quants(r.outage.aloneFallback)}; ${quants(r.outage.aloneAfter)}`, 'p99 ≤ 2 s (one node)',
            verdict([r.outage.aloneFallback, r.outage.aloneAfter].every((c) => c.unconverged === 0 && c.p99 <= 2000))],
        ] satisfies Array<[string, string, string, string]>
      : [['NATS stopped during changes', 'not run: the nodes follow SQL', '–', ''] satisfies [string, string, string, string]]),
    resnapshotRow(`forced re-snapshot from the restore's start (a dump's restore, ${ms(r.resnapshot.restoreMs)} of it)`, r.resnapshot),
    [`heartbeats of the ${r.nodes} cells, ${r.heartbeat.n}: p50 / p99 / max; failures`, `${ms(r.heartbeat.p50)} / ${ms(r.heartbeat.p99)} / ${ms(r.heartbeat.max)}; ${r.heartbeat.failures}`, 'p99 ≤ 100 ms, 0 failures', verdict(r.heartbeat.p99 <= 100 && r.heartbeat.failures === 0)],
    r.aloneHeartbeat
      ? [`  a cell heart-beating every 100 ms from a process of its own, ${r.aloneHeartbeat.sent}`, `${ms(r.aloneHeartbeat.p50)} / ${ms(r.aloneHeartbeat.p99)} / ${ms(r.aloneHeartbeat.max)}; ${r.aloneHeartbeat.failures}`,
          'p99 ≤ 100 ms, 0 failures (one node)', verdict(r.aloneHeartbeat.p99 <= 100 && r.aloneHeartbeat.failures === 0)]
      : ['  a cell heart-beating from a process of its own', 'the probe failed (see its stderr)', 'p99 ≤ 100 ms (one node)', 'MISSED'],
    ['cells expired by the reaper', String(r.cellsExpired), '0', verdict(r.cellsExpired === 0)],
    ...(r.follow === 'nats' ? [[`publisher candidates that held the lock (of ${PUBLISHER_CANDIDATES})`, String(r.publishers), '–', ''] satisfies [string, string, string, string]] : []),
    [`${r.daemons.length} daemons (probe, 200 q/s each): unanswered of sent`, `${unanswered} of ${sent}`, '0', verdict(unanswered === 0)],
    ['daemons: records lost by identity (name and address; extra)', `${lost} (${extra})`, '0', verdict(lost === 0)],
    ['PgBouncer over the run: clients waiting at peak, longest wait', pooled(r.pooler), '–', ''],
    ['connections on the primary at peak', `${r.primaryConnections.peak} (${Object.entries(r.primaryConnections.byPart).map(([k, v]) => `${k} ${v}`).join(', ')})`, 'bounded by config, not N', ''],
    ['NATS: memory (RSS) and connections at peak', `${r.nats.peakMemMb.toFixed(0)} MB, ${r.nats.peakConnections}`, '–', ''],
    ['simulator processes (registrars, syncers or both): nodes and peak RSS each', r.processes.map((p) => `${p.parts} ${p.nodes}: ${p.peakRssMb.toFixed(0)} MB`).join(', '), '–', ''],
  ];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((row) => row[i].length)));
  return [
    '',
    `fleet of nodes: ${r.nodes} nodes × ${r.instances} instances, ${r.nodes - 1} in ${r.procs} processes of registrars and ${r.procs} of syncers, the probe node alone, following ${r.follow === 'nats' ? `the fan-out (NATS JetStream, SQL fallback on ${r.replica ? 'a replica' : 'the primary'})` : `SQL through PgBouncer${r.replica ? ' on a replica' : ''}`}; `
    + `PgBouncer (transaction pooling, ${BOUNCER_POOL} server connections); heartbeat every ${TTL_MS / 3000} s; ${CHANGES_PER_SECOND} changes/s for ${CHANGE_SECONDS} s; ${cpus().length} cores`,
    ...rows.map((row) => row.map((c, i) => c.padEnd(widths[i])).join(' | ').trimEnd()),
    '',
  ].join('\n');
}

/** One run in a process of its own (its own database and processes); null if it failed. */
function runChild(nodes: number, procs: number, env: Record<string, string>, extra: string[]): Promise<NodesResult | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--nodes', String(nodes), '--procs', String(procs), '--json', ...extra], {
      env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    // A sweep run is bounded too: an hour, then it counts as failed.
    const timer = setTimeout(() => child.kill('SIGTERM'), 3_600_000);
    const stop = () => child.kill('SIGTERM');
    process.once('SIGINT', stop);
    child.once('exit', (code) => {
      clearTimeout(timer);
      process.off('SIGINT', stop);
      const line = out.trim().split('\n').pop() ?? '';
      resolve(code === 0 && line.startsWith('{') ? JSON.parse(line) as NodesResult : null);
    });
  });
}

/** N = 100, 1,000, 2,000, then 2,000 × 300 instances: each figure against N = 100. */
async function sweep(procs: number, extra: string[]): Promise<void> {
  const runs: Array<[number, number]> = [[100, INSTANCES], [1000, INSTANCES], [2000, INSTANCES], [2000, 300]];
  const results: NodesResult[] = [];
  for (const [nodes, instances] of runs) {
    const r = await runChild(nodes, procs, { FLEET_INSTANCES: String(instances) }, extra);
    if (r) {
      process.stdout.write(table(r));
      results.push(r);
    } else {
      log(`the run of ${nodes} nodes × ${instances} instances failed (see above)`);
      const ref = results.find((x) => x.nodes === nodes) ?? results.at(-1);
      if (ref) process.stdout.write(projection(ref, nodes, instances));
    }
  }
  if (results.length === 0) return;
  const base = results[0];
  const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}×` : '–');
  const lines: string[][] = [['nodes × instances', 'PG CPU/chg', 'PG xact/chg', 'PG idle CPU', 'PG idle xact/s', 'conv p99', 'alone conv p99', 'cold start', 'cold PG CPU', 'resnap', 'hb p99', 'alone hb p99', 'hb fail', 'unans', 'lost', 'PG conns', 'NATS MB', 'RSS/proc']];
  for (const r of results) {
    const unanswered = r.daemons.reduce((a, d) => a + d.unanswered + d.wrong, 0);
    const lost = r.daemons.reduce((a, d) => a + d.lost, 0);
    lines.push([
      `${r.nodes} × ${r.instances}`,
      `${ms(r.perChange.cpuMs)} (${ratio(r.perChange.cpuMs, base.perChange.cpuMs)})`, `${r.perChange.commits.toFixed(1)} (${ratio(r.perChange.commits, base.perChange.commits)})`,
      `${pct(r.idle.cpuPercent)} (${ratio(r.idle.cpuPercent, base.idle.cpuPercent)})`, `${r.idle.commitsPerSecond.toFixed(0)} (${ratio(r.idle.commitsPerSecond, base.idle.commitsPerSecond)})`,
      `${ms(r.convergence.p99)} (${ratio(r.convergence.p99, base.convergence.p99)})`, ms(r.aloneConvergence.p99),
      ms(r.coldStart.ms), pct(r.coldStart.primary.cpuPercent), ms(r.resnapshot.ms),
      `${ms(r.heartbeat.p99)} (${ratio(r.heartbeat.p99, base.heartbeat.p99)})`, ms(r.aloneHeartbeat?.p99 ?? null), String(r.heartbeat.failures), String(unanswered), String(lost),
      String(r.primaryConnections.peak), r.nats.peakMemMb.toFixed(0), `${Math.max(...r.processes.map((p) => p.peakRssMb)).toFixed(0)} MB`,
    ]);
  }
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  process.stdout.write([
    '',
    `sweep: each figure and its ratio to the ${base.nodes}-node run (target: primary work per change at 2,000 ≤ 1.2× the 100-node run)`,
    ...lines.map((l) => l.map((c, i) => c.padEnd(widths[i])).join(' | ').trimEnd()),
    '',
  ].join('\n'));
}

/**
 * A run the machine could not finish, projected from one it did: the nodes' CPU per
 * snapshot row (every node parses the snapshot) and their memory per node.
 */
function projection(ref: NodesResult, nodes: number, instances: number): string {
  const rows = nodes * instances;
  const cpuPerRowMs = ref.coldStart.nodesCpuMsPerNode / Math.max(1, ref.coldStart.rows);
  const coldCpuS = (cpuPerRowMs * rows * nodes) / 1000;
  const rssPerNodeMb = ref.processes.reduce((a, p) => a + p.peakRssMb, 0) / ref.nodes;
  return [
    '',
    `projection for ${nodes} nodes × ${instances} instances (${rows} rows), from the ${ref.nodes} × ${ref.instances} run:`,
    `  a node's cold start costs ${(cpuPerRowMs * 1000).toFixed(2)} µs of CPU per snapshot row: ${(cpuPerRowMs * rows / 1000).toFixed(2)} s per node, `
    + `${coldCpuS.toFixed(0)} s of CPU for all, at least ${(coldCpuS / cpus().length).toFixed(0)} s on ${cpus().length} cores (target 120 s)`,
    `  memory: ${rssPerNodeMb.toFixed(2)} MB per simulated node at ${ref.instances} instances a cell`,
    '',
  ].join('\n');
}

export async function main(argv: string[]): Promise<void> {
  const value = (flag: string, fallback: number) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? Number(argv[i + 1]) : fallback;
  };
  const procs = value('--procs', 4);
  if (argv.includes('--sweep-nodes')) return sweep(procs, ['--sql', '--replica'].filter((flag) => argv.includes(flag)));
  const nodes = value('--nodes', 100);
  // One node runs alone; the others fill --procs processes.
  if (!Number.isInteger(nodes) || nodes <= procs) throw new Error(`--nodes must be a whole number over --procs (${procs}), got ${argv[argv.indexOf('--nodes') + 1]}`);
  const result = await simulate(nodes, procs);
  process.stdout.write(argv.includes('--json') ? `${JSON.stringify(result)}\n` : table(result));
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await main(process.argv.slice(2));
