// A fleet of real daemons on one presence database, for the database fault scenarios:
// starts them (each its own cell and registrations), restarts and stops them, tells
// whether a node answers every known instance and what its file holds, and runs a
// scenario under a steady UDP load and the records check on every node (report.ts),
// adding the scenario's row to the summary.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import { required } from '../../helpers/required.ts';
import type { PgServer } from '../../helpers/pg-server.ts';
import { syncedInstances } from '../../helpers/topology.ts';
import { answers, instancesFile, metric, presenceConfig, type TestInstance } from '../../presence/daemons.ts';
import { daemonRss, expectNothingLost, reportSeen, sleep, Watch, type Expectation, type Seen } from './report.ts';

/** The name that answers one instance, by its id. */
export const instanceName = (i: TestInstance) => `${i.id}.${i.group}.default.cf.bosh`;

interface Node {
  cellId: string;
  instances: TestInstance[];
  config: Record<string, unknown>;
}

export class Fleet {
  readonly nodes: RunningDaemon[] = [];
  private readonly cells = new Map<RunningDaemon, Node>();
  /** Nodes being restarted: down or starting, so not asked meanwhile. */
  private readonly restarting = new Set<RunningDaemon>();
  /**
   * Instances every node has answered (waitAllAnswer), by name: from then on every node
   * must answer them, until their node is stopped for good.
   */
  private readonly settled = new Map<string, TestInstance>();

  /** What every node must answer: each settled instance, by its id, with its address. */
  readonly expected: Expectation = {
    names: () => [...this.settled.keys()],
    allowed: (name) => {
      const instance = this.settled.get(name);
      return instance ? [[instance.ip]] : null;
    },
  };

  constructor(private readonly databaseUrl: string, readonly ttlSeconds: number) {}

  /** Every instance registered on a node of the fleet. */
  get known(): TestInstance[] {
    return [...this.cells.values()].flatMap((n) => n.instances);
  }

  instancesOf(daemon: RunningDaemon): TestInstance[] {
    return this.nodeOf(daemon).instances;
  }

  private nodeOf(daemon: RunningDaemon): Node {
    return required(this.cells.get(daemon), `a node of the fleet on port ${daemon.dnsPort}`);
  }

  async start(cellId: string, instances: TestInstance[], config: Record<string, unknown> = {}): Promise<RunningDaemon> {
    const daemon = await startDaemon({
      config: presenceConfig(this.databaseUrl, cellId, this.ttlSeconds, config), files: { 'instances.d/base.json': instancesFile(instances) },
    });
    this.nodes.push(daemon);
    this.cells.set(daemon, { cellId, instances, config });
    return daemon;
  }

  /** Kills a node and starts it again over its own directory (its file, its registrations). */
  async restart(daemon: RunningDaemon, options: { waitReady?: boolean } = {}): Promise<RunningDaemon> {
    const node = this.nodeOf(daemon);
    this.restarting.add(daemon);
    await daemon.stop('SIGKILL');
    const again = await startDaemon({ dir: daemon.dir, config: presenceConfig(this.databaseUrl, node.cellId, this.ttlSeconds, node.config), waitReady: options.waitReady });
    this.nodes[this.nodes.indexOf(daemon)] = again;
    this.cells.delete(daemon);
    this.cells.set(again, node);
    this.restarting.delete(daemon);
    return again;
  }

  /**
   * Stops a node for good (SIGKILL, or `signal`): from now on its instances need not be
   * answered (the others answer them until they expire). Resolves to its exit code.
   */
  async kill(daemon: RunningDaemon, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    const node = this.nodeOf(daemon);
    this.nodes.splice(this.nodes.indexOf(daemon), 1);
    this.cells.delete(daemon);
    for (const i of node.instances) this.settled.delete(instanceName(i));
    return daemon.stop(signal);
  }

  /** The nodes up now (not being restarted). */
  serving(): RunningDaemon[] {
    return this.nodes.filter((d) => !this.restarting.has(d));
  }

  /** Registers more instances on a node (a registration file of their own). */
  register(daemon: RunningDaemon, ...instances: TestInstance[]): void {
    writeFileSync(join(daemon.dir, `instances.d/${instances[0].id}.json`), instancesFile(instances));
    this.nodeOf(daemon).instances.push(...instances);
  }

  async answersAll(daemon: RunningDaemon, instances = this.known): Promise<boolean> {
    for (const i of instances) if ((await answers(daemon, i.group))[0] !== i.ip) return false;
    return true;
  }

  /** Waits until every node answers every known instance; from then on each must keep answering them. */
  async waitAllAnswer(what: string, timeoutMs = 30_000): Promise<void> {
    const known = this.known;
    await waitFor(async () => (await Promise.all(this.nodes.map((d) => this.answersAll(d, known)))).every(Boolean), timeoutMs, what);
    for (const i of known) this.settled.set(instanceName(i), i);
  }

  /**
   * Waits until every node's topology is at the database's newest revision: the syncers
   * follow this database (by a delta or a snapshot, whichever the race between the
   * registrars' rewrites and the syncers' polls made necessary).
   */
  async waitFollowing(newestRevision: () => Promise<number>, timeoutMs = 30_000): Promise<void> {
    await waitFor(async () => {
      const revision = await newestRevision();
      return (await Promise.all(this.nodes.map((d) => metric(d, 'presence_dns_topology_revision')))).every((r) => r === revision);
    }, timeoutMs, 'every node to sync to the newest revision');
  }

  /** The topology file a node's syncer writes. */
  topologyFile(daemon: RunningDaemon): string {
    const topology = this.nodeOf(daemon).config.topology as { file?: string } | undefined;
    return topology?.file ?? join(daemon.dir, 'topology.json');
  }

  fileRecords(daemon: RunningDaemon): number {
    return syncedInstances(this.topologyFile(daemon)).length;
  }

  async metricSum(name: string): Promise<number> {
    return (await Promise.all(this.nodes.map((d) => metric(d, name)))).reduce((a, b) => a + b, 0);
  }

  /**
   * Runs `scenario` under a UDP load on `daemons` (default: every node) asking for the
   * settled instances, with the records check on every node up, adds its row and asserts
   * that every answer was right and no node ever lacked a settled instance. `run` gets
   * the load, to add a node it restarts once that answers.
   */
  async underLoad(scenario: string, run: (watch: Watch) => Promise<void>, options: { daemons?: RunningDaemon[]; note?: () => string } = {}): Promise<void> {
    const watch = new Watch({ daemons: [...(options.daemons ?? this.nodes)], nodes: () => this.serving(), expected: this.expected });
    let seen: Seen;
    try {
      await run(watch);
    } finally {
      // The row and the load's figures even when the scenario failed.
      seen = await watch.stop();
      reportSeen(scenario, seen, daemonRss(...this.nodes), options.note?.());
    }
    expectNothingLost(seen);
  }

  /** The smallest number of records each node's file held while `run` ran. */
  async smallestFiles(run: () => Promise<void>): Promise<number[]> {
    const smallest = this.nodes.map(() => Infinity);
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        this.nodes.forEach((d, n) => (smallest[n] = Math.min(smallest[n], this.fileRecords(d))));
        await sleep(10);
      }
    })();
    try {
      await run();
    } finally {
      watching = false;
      await watcher;
    }
    return smallest;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((d) => d.stop('SIGKILL')));
  }
}

/** Live presence rows in a server's database. */
export async function liveRows(server: PgServer): Promise<number> {
  return Number((await server.sql<{ n: string }>('SELECT count(*) AS n FROM presences WHERE NOT deleted'))[0].n);
}

/** The newest revision a server's database has given a presence row. */
export async function maxRevision(server: PgServer): Promise<number> {
  return Number((await server.sql<{ r: string }>('SELECT max(revision) AS r FROM presences'))[0].r);
}
