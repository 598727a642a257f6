// A child process of bench/fleet-nodes.ts: many simulated nodes in one process. Each node
// is a cell as a daemon runs it — its own Registrar (its own pool of one connection,
// through PgBouncer) claiming the cell, writing its instances and heart-beating every
// ttl/3, and its own Syncer (the control plane's sync code) following the presence changes
// through a follower of its own (its own NATS connection with the fan-out; its own
// connection through PgBouncer with SQL). A process runs one half of its nodes or both
// (`parts`): as a daemon runs its syncer on a thread of its own, the bench runs most
// nodes' registrars and syncers in different processes. The syncer's sink only counts: the
// revision the node reached and the rows it received, never the topology, so thousands of
// nodes fit in a few processes. The parent drives it over IPC (ToCells) and hears back (FromCells):
// every revision all of this process's nodes have reached, every change committed, every
// heartbeat's latency.
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { Registry } from '../src/admin/metrics.ts';
import { systemClock } from '../src/clock.ts';
import { Syncer, type SnapshotBuilder, type SyncView, type TopologySink } from '../src/control/syncer.ts';
import type { Instance } from '../src/image/instance.ts';
import type { TopologyDelta } from '../src/image/view.ts';
import { startFanout, type Fanout } from '../src/fanout/index.ts';
import { SqlChangeSource, type ChangeSource } from '../src/presence/change-source.ts';
import { PresenceStore, Registrar, type Db, type WriteResult } from '../src/presence/index.ts';
import { openPgDb } from '../src/presence/pg-db.ts';
import type { Logger } from '../src/log.ts';
import type { Registration } from '../src/registrations/types.ts';
import { required } from '../test/helpers/required.ts';
import { TestSource } from '../test/presence/fixtures.ts';
import { FANOUT_PREFIX, instancesOf, SNAPSHOT_EVERY, wallNow, type Health } from './fleet-shape.ts';

export interface CellsSetup {
  /** PgBouncer's URL for the bench database: every node's registrar. */
  url: string;
  /** Where a node's SQL follower (the fan-out's fallback) reads: `url`, or a replica's PgBouncer. */
  fallbackUrl: string;
  natsUrl: string;
  /** How the nodes follow the changes: the database (through PgBouncer), or the fan-out. */
  follow: 'sql' | 'nats';
  /** The cells (global indices) this process runs, one node each. */
  cells: number[];
  /**
   * The part of each node this process runs: its registrar (`write`), its syncer (`read`),
   * or both. A daemon runs them on two threads (the syncer in the topology worker), so a
   * node's heartbeats never wait behind its snapshot's parsing: the bench runs the two
   * halves of most nodes in processes of their own for the same reason.
   */
  parts: 'write' | 'read' | 'both';
  instances: number;
  ttlMs: number;
  syncIntervalMs: number;
  /** The fan-out's `sync.snapshot_slots`: database snapshots at once, fleet-wide, while NATS cannot answer. */
  snapshotSlots: number;
  /** Cells registering at once in this process (writers serialise on the revision row anyway). */
  registerConcurrency: number;
}

export type ToCells =
  | { kind: 'setup'; setup: CellsSetup }
  /** Every node's registrar claims its cell and writes its instances once. */
  | { kind: 'register' }
  /** The registrars start heart-beating, their starts spread over one period. */
  | { kind: 'heartbeat' }
  /** Every node's syncer starts at once (a cold start); `mark` as for `mark`. */
  | { kind: 'follow'; mark: number }
  /** Report `snapshotted` once every node has put a snapshot in service after this message. */
  | { kind: 'mark'; mark: number }
  /** Changes (an instance's health flipped) on random cells of this process, through their registrars. */
  | { kind: 'changes'; perSecond: number; seconds: number }
  | { kind: 'report' }
  /** How many nodes read NATS and how many the database (the fan-out's mode); the snapshots and heartbeats so far. */
  | { kind: 'counters' }
  /** Stops every node and exits (no deregistration: the database is dropped anyway). */
  | { kind: 'stop' };

export interface CellsReport {
  nodes: number;
  /** Heartbeat latencies (ms) since the registrars started, and heartbeats that threw. */
  heartbeats: number[];
  heartbeatFailures: number;
  rssMb: number;
  peakRssMb: number;
  heapMb: number;
  /** Fewest and most live rows a node's last snapshot held. */
  snapshotRows: { min: number; max: number };
  /** Rows (and tombstones) the nodes received after their snapshots, in all. */
  rowsApplied: number;
}

export type FromCells =
  | { kind: 'ready' }
  | { kind: 'registered'; ms: number }
  /** Every node of this process has applied `revision` or later (or, after a restore, went back to it). */
  | { kind: 'reached'; revision: number; at: number }
  /** Every node of this process put a snapshot in service after mark `mark`; the oldest was at `revision`. */
  | { kind: 'snapshotted'; mark: number; revision: number; at: number }
  /** A change committed: the moment its registrar learnt the revision. */
  | { kind: 'commit'; revision: number; at: number }
  | { kind: 'changed'; changes: number }
  | { kind: 'report'; report: CellsReport }
  /** `snapshots`: those the nodes put in service so far, in all; `heartbeats`: those the registrars sent that returned. */
  | { kind: 'counters'; nats: number; fallback: number; snapshots: number; heartbeats: number };

/** A topology view that holds nothing: its revision, and the rows its snapshot had. */
class CountingView implements SyncView {
  seq = 0;

  constructor(public version: number, readonly recordCount: number) {}

  /** Nothing is held, so a row always reads as new: the syncer removes nothing and re-adds it. */
  withId(): Instance[] {
    return [];
  }

  cells(): Set<string | null> {
    return new Set();
  }

  instances(): Iterable<Instance> {
    return [];
  }

  apply(delta: TopologyDelta): void {
    this.version = delta.version;
    this.seq = delta.seq;
  }
}

/** A node's sink: tells `reached` of every revision it puts in service. */
class CountingSink implements TopologySink<CountingView> {
  current: CountingView | null = null;
  rowsApplied = 0;
  snapshots = 0;

  constructor(private readonly reached: (revision: number, snapshot: boolean) => void) {}

  apply(version: number, removes: string[], adds: Instance[]): void {
    const view = required(this.current, 'a view in service (the syncer applies a delta only to one)');
    view.apply({ seq: view.seq + 1, version, removes, adds });
    this.rowsApplied += removes.length + adds.length;
    this.reached(version, false);
  }

  snapshot(): SnapshotBuilder<CountingView> {
    let rows = 0;
    return {
      add: () => {
        rows++;
        return null;
      },
      finish: (version) => new CountingView(version, rows),
    };
  }

  replaceView(view: CountingView): void {
    this.current = view;
    this.snapshots++;
    this.reached(view.version, true);
  }
}

/**
 * The lowest revision over this process's nodes, kept as a count of nodes per revision
 * (they bunch at a few), so a move costs O(1) unless it empties the lowest bucket.
 */
class LowestRevision {
  private readonly at: number[];
  private readonly counts = new Map<number, number>();
  private lowest = -1;

  constructor(nodes: number, private readonly changed: (revision: number) => void) {
    this.at = new Array<number>(nodes).fill(-1);
    this.counts.set(-1, nodes);
  }

  move(node: number, revision: number): void {
    const from = this.at[node];
    if (from === revision) return;
    this.at[node] = revision;
    const left = required(this.counts.get(from), `the count of nodes at revision ${from}`) - 1;
    if (left) this.counts.set(from, left);
    else this.counts.delete(from);
    this.counts.set(revision, (this.counts.get(revision) ?? 0) + 1);
    const lowest = revision < this.lowest ? revision : left === 0 && from === this.lowest ? Math.min(...this.counts.keys()) : this.lowest;
    if (lowest !== this.lowest) {
      this.lowest = lowest;
      this.changed(lowest);
    }
  }
}

interface HeartbeatStats {
  measuring: boolean;
  latencies: number[];
  failures: number;
  /** Every heartbeat that returned, measured or not (one transaction each). */
  sent: number;
}

/** The real store, timing heartbeats and telling of every change committed once registration is over. */
class NodeStore extends PresenceStore {
  constructor(db: Db, private readonly stats: HeartbeatStats, private readonly committed: (revision: number) => void) {
    super(db);
  }

  override async heartbeat(cellId: string, owner: string): Promise<{ liveInstances: number } | null> {
    const started = performance.now();
    try {
      const result = await super.heartbeat(cellId, owner);
      this.stats.sent++;
      if (this.stats.measuring) this.stats.latencies.push(performance.now() - started);
      return result;
    } catch (err) {
      if (this.stats.measuring) this.stats.failures++;
      throw err;
    }
  }

  override async writeInstances(cellId: string, registrations: Registration[]): Promise<WriteResult> {
    const result = await super.writeInstances(cellId, registrations);
    if (result.written + result.tombstoned > 0) this.committed(result.revision);
    return result;
  }
}

/** A node's registrar: its cell's instances, written and heart-beaten. */
interface Writer {
  cell: number;
  health: Health[];
  source: TestSource;
  registrar: Registrar;
  db: Db;
}

/** A node's syncer: what it follows the changes through, and what it reached. */
interface Reader {
  cell: number;
  sink: CountingSink;
  /** The follower's database pool (the fallback's, with the fan-out). */
  db: Db;
  /** Its syncer and fan-out, from the cold start on (the fan-out connects to NATS then, as a starting daemon's does). */
  following: { syncer: Syncer<CountingView>; fanout: Fanout | null } | null;
}

/** What a node follows the changes through: its own fan-out follower (falling back to `db`), or `db` itself. */
function follower(setup: CellsSetup, db: Db, cell: number, logger: Logger): { source: ChangeSource; fanout: Fanout | null } {
  // Through PgBouncer LISTEN cannot work: the database is polled.
  const sql = new SqlChangeSource(new PresenceStore(db), { listen: false });
  if (setup.follow === 'sql') return { source: sql, fanout: null };
  const fanout = startFanout({
    settings: { natsUrl: setup.natsUrl, prefix: FANOUT_PREFIX, publisher: false, snapshotEvery: SNAPSHOT_EVERY, snapshotSlots: setup.snapshotSlots, owner: randomUUID() },
    sql, intervalMs: setup.syncIntervalMs, lockTtlMs: setup.ttlMs, clock: systemClock, logger, name: `fleet node cell${cell}`,
  });
  return { source: fanout.source, fanout };
}

const send = (m: FromCells) => {
  if (!process.send) throw new Error('bench/fleet-cells.ts has no IPC channel: it runs as a child of bench/fleet-nodes.ts (npm run bench:fleet -- --nodes N)');
  return process.send(m);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One line per distinct message on stderr, however many nodes log it. */
function dedupLogger() {
  const seen = new Set<string>();
  return pino({ level: 'warn' }, {
    write(line: string) {
      const { msg } = JSON.parse(line) as { msg: string };
      if (seen.has(msg)) return;
      seen.add(msg);
      process.stderr.write(`fleet cells ${process.pid}: ${line}`);
    },
  });
}

function startCells(setup: CellsSetup) {
  const logger = dedupLogger();
  const metrics = new Registry();
  const stats: HeartbeatStats = { measuring: false, latencies: [], failures: 0, sent: 0 };
  let reportCommits = false;
  const writing = setup.parts !== 'read';
  const reading = setup.parts !== 'write';
  const lowest = new LowestRevision(reading ? setup.cells.length : 0, (revision) => send({ kind: 'reached', revision, at: wallNow() }));
  /** The nodes yet to put a snapshot in service since the mark, and the oldest revision those did. */
  let marked: { mark: number; waiting: Set<number>; revision: number } | null = null;
  let peakRss = 0;
  const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 1000);

  const writers: Writer[] = (writing ? setup.cells : []).map((cell) => {
    const db = openPgDb(setup.url, logger, { max: 1, name: 'fleet registrar' });
    const health = new Array<Health>(setup.instances).fill('running');
    const source = new TestSource();
    source.set(instancesOf(cell, setup.instances, (j) => health[j]));
    const store = new NodeStore(db, stats, (revision) => reportCommits && send({ kind: 'commit', revision, at: wallNow() }));
    const registrar = new Registrar({ store, source, cellId: `cell${cell}`, address: null, ttlMs: setup.ttlMs, clock: systemClock, logger, metrics });
    return { cell, health, source, registrar, db };
  });
  const readers: Reader[] = (reading ? setup.cells : []).map((cell, n) => {
    const db = openPgDb(setup.fallbackUrl, logger, { max: 1, name: 'fleet follower' });
    const sink = new CountingSink((revision, snapshot) => {
      lowest.move(n, revision);
      if (!snapshot || !marked?.waiting.delete(n)) return;
      marked.revision = Math.min(marked.revision, revision);
      if (marked.waiting.size === 0) {
        send({ kind: 'snapshotted', mark: marked.mark, revision: marked.revision, at: wallNow() });
        marked = null;
      }
    });
    return { cell, sink, db, following: null };
  });

  /** Every node's follower and syncer, started at once. */
  function follow(): void {
    for (const node of readers) {
      const { source: changes, fanout } = follower(setup, node.db, node.cell, logger);
      const syncer = new Syncer<CountingView>({
        source: changes, sink: node.sink, intervalMs: setup.syncIntervalMs, ttlMs: setup.ttlMs, maxDropFraction: 0.3, guardHold: 10,
        clock: systemClock, logger, refusal: () => null, claim: () => undefined,
      });
      node.following = { syncer, fanout };
      syncer.start();
    }
  }

  const mark = (m: number) => (marked = reading ? { mark: m, waiting: new Set(readers.map((_, n) => n)), revision: Infinity } : null);

  async function register(): Promise<void> {
    const started = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: setup.registerConcurrency }, async () => {
      while (next < writers.length) await writers[next++].registrar.kick();
    }));
    reportCommits = true;
    send({ kind: 'registered', ms: performance.now() - started });
  }

  function heartbeat(): void {
    stats.measuring = true;
    const period = setup.ttlMs / 3;
    for (const node of writers) setTimeout(() => node.registrar.start(), Math.random() * period);
  }

  /** `perSecond` health flips on random cells, each through its cell's registrar (a change wakes it). */
  async function changes(perSecond: number, seconds: number): Promise<void> {
    const started = performance.now();
    let made = 0;
    for (;;) {
      const elapsed = performance.now() - started;
      if (elapsed >= seconds * 1000) break;
      const node = writers[Math.floor(Math.random() * writers.length)];
      // The last index is the probed one: never changed.
      const j = Math.floor(Math.random() * (setup.instances - 1));
      node.health[j] = node.health[j] === 'running' ? 'failing' : 'running';
      node.source.set(instancesOf(node.cell, setup.instances, (k) => node.health[k]));
      made++;
      await sleep(Math.max(0, (made * 1000) / perSecond - elapsed));
    }
    send({ kind: 'changed', changes: made });
  }

  function report(): CellsReport {
    const rows = readers.map((n) => n.sink.current?.recordCount ?? 0);
    const memory = process.memoryUsage();
    const report: CellsReport = {
      nodes: setup.cells.length, heartbeats: stats.latencies.splice(0), heartbeatFailures: stats.failures,
      rssMb: memory.rss / 2 ** 20, peakRssMb: Math.max(peakRss, memory.rss) / 2 ** 20, heapMb: memory.heapUsed / 2 ** 20,
      snapshotRows: { min: rows.length ? Math.min(...rows) : 0, max: Math.max(0, ...rows) }, rowsApplied: readers.reduce((a, n) => a + n.sink.rowsApplied, 0),
    };
    stats.failures = 0;
    return report;
  }

  async function stop(): Promise<void> {
    clearInterval(rssTimer);
    const following = readers.flatMap((n) => n.following ?? []);
    await Promise.all([...writers.map((n) => n.registrar.stop()), ...following.map((f) => f.syncer.stop())]);
    await Promise.all(following.flatMap((f) => f.fanout ?? []).map((fanout) => fanout.stop()));
    await Promise.all([...writers, ...readers].map((n) => n.db.close().catch(() => undefined)));
  }

  function counters(): FromCells {
    const nats = readers.filter((n) => n.following?.fanout?.status().mode === 'nats').length;
    return { kind: 'counters', nats, fallback: readers.length - nats, snapshots: readers.reduce((a, n) => a + n.sink.snapshots, 0), heartbeats: stats.sent };
  }

  return { register, heartbeat, follow, changes, report, counters, stop, mark };
}

let cells: ReturnType<typeof startCells> | null = null;
process.on('message', (m: ToCells) => {
  const fail = (err: Error) => {
    process.stderr.write(`fleet cells ${process.pid}: ${m.kind} failed: ${err.stack ?? err.message}\n`);
    process.exit(1);
  };
  const running = () => required(cells, `fleet cells ${process.pid}: the setup message before '${m.kind}'`);
  switch (m.kind) {
    case 'setup':
      cells = startCells(m.setup);
      send({ kind: 'ready' });
      break;
    case 'register':
      running().register().catch(fail);
      break;
    case 'heartbeat':
      running().heartbeat();
      break;
    case 'follow':
      running().mark(m.mark);
      running().follow();
      break;
    case 'mark':
      running().mark(m.mark);
      break;
    case 'changes':
      running().changes(m.perSecond, m.seconds).catch(fail);
      break;
    case 'report':
      send({ kind: 'report', report: running().report() });
      break;
    case 'counters':
      send(running().counters());
      break;
    case 'stop':
      void (cells?.stop() ?? Promise.resolve()).finally(() => process.exit(0));
      break;
  }
});
// The parent gone (killed, or Ctrl-C) leaves no node behind.
process.on('disconnect', () => process.exit(0));
