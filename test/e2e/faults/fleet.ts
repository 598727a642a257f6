// A fleet of real daemons on one presence database, for the database fault scenarios:
// starts them (each its own cell and registrations), tells whether a node answers every
// known instance and what its file holds, runs a scenario under a steady UDP load on the
// nodes and adds the scenario's row to the summary.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { startDaemon, waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import type { PgServer } from '../../helpers/pg-server.ts';
import { syncedInstances } from '../../helpers/topology.ts';
import { answers, instancesFile, metric, presenceConfig, type TestInstance } from '../../presence/daemons.ts';
import { daemonRss, Load, report, sleep } from './report.ts';

interface Node {
  cellId: string;
  instances: TestInstance[];
  config: Record<string, unknown>;
}

export class Fleet {
  readonly nodes: RunningDaemon[] = [];
  private readonly cells = new Map<RunningDaemon, Node>();

  constructor(private readonly databaseUrl: string, readonly ttlSeconds: number) {}

  /** Every instance registered on a node of the fleet. */
  get known(): TestInstance[] {
    return [...this.cells.values()].flatMap((n) => n.instances);
  }

  instancesOf(daemon: RunningDaemon): TestInstance[] {
    return this.cells.get(daemon)!.instances;
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
    const node = this.cells.get(daemon)!;
    await daemon.stop('SIGKILL');
    const again = await startDaemon({ dir: daemon.dir, config: presenceConfig(this.databaseUrl, node.cellId, this.ttlSeconds, node.config), waitReady: options.waitReady });
    this.nodes[this.nodes.indexOf(daemon)] = again;
    this.cells.delete(daemon);
    this.cells.set(again, node);
    return again;
  }

  /** Kills a node for good: its instances are no longer expected to answer. */
  async kill(daemon: RunningDaemon): Promise<TestInstance[]> {
    await daemon.stop('SIGKILL');
    this.nodes.splice(this.nodes.indexOf(daemon), 1);
    const node = this.cells.get(daemon)!;
    this.cells.delete(daemon);
    return node.instances;
  }

  /** Registers more instances on a node (a registration file of their own). */
  register(daemon: RunningDaemon, ...instances: TestInstance[]): void {
    writeFileSync(join(daemon.dir, `instances.d/${instances[0].id}.json`), instancesFile(instances));
    this.cells.get(daemon)!.instances.push(...instances);
  }

  async answersAll(daemon: RunningDaemon, instances = this.known): Promise<boolean> {
    for (const i of instances) if ((await answers(daemon, i.group))[0] !== i.ip) return false;
    return true;
  }

  async waitAllAnswer(what: string, timeoutMs = 15_000): Promise<void> {
    await waitFor(async () => (await Promise.all(this.nodes.map((d) => this.answersAll(d)))).every(Boolean), timeoutMs, what);
  }

  /**
   * Waits until every node's topology is at the database's newest revision: the syncers
   * follow this database (by a delta or a snapshot, whichever the race between the
   * registrars' rewrites and the syncers' polls made necessary).
   */
  async waitFollowing(newestRevision: () => Promise<number>, timeoutMs = 15_000): Promise<void> {
    await waitFor(async () => {
      const revision = await newestRevision();
      return (await Promise.all(this.nodes.map((d) => metric(d, 'presence_dns_topology_revision')))).every((r) => r === revision);
    }, timeoutMs, 'every node to sync to the newest revision');
  }

  /** The topology file a node's syncer writes. */
  topologyFile(daemon: RunningDaemon): string {
    const topology = this.cells.get(daemon)!.config.topology as { file?: string } | undefined;
    return topology?.file ?? join(daemon.dir, 'topology.json');
  }

  fileRecords(daemon: RunningDaemon): number {
    return syncedInstances(this.topologyFile(daemon)).length;
  }

  /** Known instances missing from the nodes' files, summed over the nodes. */
  recordsLost(): number {
    const known = this.known;
    return this.nodes.reduce((n, d) => {
      const ids = new Set(syncedInstances(this.topologyFile(d)).map((i) => i.id));
      return n + known.filter((i) => !ids.has(i.id)).length;
    }, 0);
  }

  async metricSum(name: string): Promise<number> {
    return (await Promise.all(this.nodes.map((d) => metric(d, name)))).reduce((a, b) => a + b, 0);
  }

  /**
   * Runs `scenario` under a UDP load on `daemons` asking for `instances`, adds its row and
   * asserts that every answer was right.
   */
  async underLoad(scenario: string, run: () => Promise<void>, options: { daemons?: RunningDaemon[]; instances?: TestInstance[] } = {}): Promise<void> {
    const instances = options.instances ?? this.known;
    const load = new Load(options.daemons ?? this.nodes, new Map(instances.map((i) => [`q-s4.${i.group}.default.cf.bosh`, [i.ip]])));
    // At least 2 s of load (200+ queries a daemon), so that even a quick scenario is measured.
    const [outcome] = await Promise.all([run().then(() => null, (err: unknown) => err), sleep(2000)]);
    const seen = await load.stop();
    report({ scenario, sent: seen.sent, failed: seen.failed, recordsLost: this.recordsLost(), rssBytes: daemonRss(...this.nodes), note: seen.failures.slice(0, 3).join('; ') });
    if (outcome) throw outcome;
    expect(seen.failures).toEqual([]);
    expect(seen.sent).toBeGreaterThan(100);
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
