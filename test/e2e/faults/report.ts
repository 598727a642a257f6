// The fault suite's shared parts: how long each scenario runs (FAULTS_LONG=1 picks the
// issue's long versions); what clients saw while a scenario ran — a steady load of
// queries, each answer checked against the answers it may rightly have, and the records
// check: every ~500 ms every node is asked for every record it must answer, and records
// lost is the most expected (name, address) pairs missing from one sample of one node —
// the daemons' RSS; and the row each scenario adds to the summary table that the suite's
// global setup prints at the end of the run.
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { TcpClient, UdpClient } from '../../dns/client.ts';
import { startDaemon, type RunningDaemon } from '../../helpers/daemon.ts';
import { required } from '../../helpers/required.ts';
import { Probe, type ProbeResult } from '../../helpers/probe.ts';
import { topologyJson } from '../../helpers/topology.ts';

/** Set by the global setup: the directory the rows are appended to. */
export const REPORT_DIR_ENV = 'FAULTS_REPORT_DIR';
export const LONG = process.env.FAULTS_LONG === '1';

/** The default (CI) size of a scenario, or its long one under FAULTS_LONG=1. */
export function size<T>(short: T, long: T): T {
  return LONG ? long : short;
}

export interface Row {
  scenario: string;
  sent: number;
  failed: number;
  recordsLost: number;
  /** The daemon's (largest of the daemons') resident set, bytes. */
  rssBytes: number;
  /** Anything else worth a column: RSS growth, connections, files... */
  note?: string;
}

export function rowsFile(dir: string): string {
  return join(dir, 'rows.jsonl');
}

/** Adds a row to the summary table (nothing when run outside the suite's global setup). */
export function report(row: Row): void {
  const dir = process.env[REPORT_DIR_ENV];
  if (dir) appendFileSync(rowsFile(dir), `${JSON.stringify(row)}\n`);
}

/** VmRSS of a process, bytes, from /proc/PID/status. */
export function rssOf(pid: number): number {
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (kb === undefined) throw new Error(`no VmRSS in /proc/${pid}/status (process gone?)`);
  return Number(kb) * 1024;
}

export function daemonRss(...daemons: RunningDaemon[]): number {
  return Math.max(...daemons.map((d) => rssOf(required(d.process.pid, 'the daemon\'s pid'))));
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const alive = (d: RunningDaemon) => d.process.exitCode === null && d.process.signalCode === null;

/** What the daemons must answer while a scenario runs. */
export interface Expectation {
  /** The names to ask now: the load cycles through them, and the records check asks every one at each sample. */
  names(): string[];
  /**
   * The address sets that answer `name` rightly, for a query sent at `sentAt` and
   * answered at `answeredAt` (performance.now()): one set, or several while a change may
   * or may not be in service yet; an empty set means "no such name" is right too. null:
   * nothing is expected of the name any more (its instance was stopped for good).
   */
  allowed(name: string, sentAt: number, answeredAt: number): string[][] | null;
}

/** Names that keep their addresses throughout (name → the addresses a right answer carries). */
export function unchanging(expected: Map<string, string[]>): Expectation {
  const sorted = new Map([...expected].map(([name, addresses]) => [name, [[...addresses].sort()]]));
  return { names: () => [...sorted.keys()], allowed: (name) => sorted.get(name) ?? null };
}

/** A reply (its addresses sorted, as the test's clients give them) is one of the right answers. */
export function isRight(allowed: string[][] | null, rcode: number, addresses: string[]): boolean {
  if (allowed === null) return true;
  const got = addresses.join(',');
  return allowed.some((set) => (set.length === 0 ? addresses.length === 0 && (rcode === 0 || rcode === 3) : rcode === 0 && [...set].sort().join(',') === got));
}

/** The expected (name, address) pairs an answer lacks (null: no answer at all): the fewest over its right answers. */
export function missingPairs(allowed: string[][] | null, addresses: string[] | null): number {
  if (allowed === null || allowed.length === 0) return 0;
  const got = new Set(addresses ?? []);
  return Math.min(...allowed.map((set) => set.filter((a) => !got.has(a)).length));
}

/**
 * The versions of a topology a test writes, for checking answers while they change:
 * a query may be answered by any version from the newest one known to be in service on
 * every thread when it was sent to the newest one written when its answer arrived — the
 * old or the new one during a swap, or one written and replaced before it was read —
 * and by no other. No timing is assumed: "in service" is what the test has seen.
 */
/** What each version of a topology answers, by name ([]: no such name). */
export class AnswersByVersion {
  private readonly byVersion = new Map<number, Map<string, string[]>>();

  set(version: number, answers: Map<string, string[]>): void {
    this.byVersion.set(version, answers);
  }

  /** Every name's answer in `version`, one the test has set. */
  of(version: number): Map<string, string[]> {
    return required(this.byVersion.get(version), `the answers of version ${version}`);
  }

  /** `name`'s answer in `version`: each version answers every name the test asks. */
  answer(version: number, name: string): string[] {
    return required(this.of(version).get(name), `the answer for ${name} in version ${version}`);
  }
}

export class Versions {
  private readonly written: Array<{ at: number; version: number }> = [];
  private readonly inService: Array<{ at: number; version: number }> = [];

  /** `first`: the version the daemon starts with, in service from the start. */
  constructor(first: number) {
    this.written.push({ at: -Infinity, version: first });
    this.inService.push({ at: -Infinity, version: first });
  }

  /** Call just before writing `version`. */
  wrote(version: number): void {
    this.written.push({ at: performance.now(), version });
  }

  /** Call once every thread answers from `version` (or a later one). */
  served(version: number): void {
    this.inService.push({ at: performance.now(), version });
  }

  get newest(): number {
    return required(this.written.at(-1), 'a version written').version;
  }

  /** The versions that may answer a query sent at `sentAt` and answered at `answeredAt`. */
  between(sentAt: number, answeredAt: number): number[] {
    // Never missing: the first version is in service and written from -Infinity.
    const from = required(this.inService.findLast((s) => s.at <= sentAt), 'a version in service').version;
    const to = required(this.written.findLast((w) => w.at <= answeredAt), 'a version written').version;
    return this.written.map((w) => w.version).filter((v) => v >= from && v <= to);
  }
}

/**
 * How long a query of the load or the records check waits for its answer before it counts
 * as unanswered: far above any latency the daemon may have (the latency target's maximum is 50 ms), so that
 * only a query the daemon never answers counts, not a loaded machine. Latency is the
 * benches' to measure.
 */
const ANSWER_WINDOW_MS = 3000;

export interface LoadOptions {
  /** Between queries of one socket, ms (default 10). */
  intervalMs?: number;
  /** Client sockets per daemon (default 1): each its own source port, so with dns.workers the kernel spreads them over the threads. */
  sockets?: number;
  /** Over TCP (one connection per socket, kept open) instead of UDP. */
  tcp?: boolean;
}

export interface LoadResult {
  sent: number;
  /** Unanswered, or answered with anything but a right answer. */
  failed: number;
  failures: string[];
}

/**
 * A steady load (test/helpers/probe.ts) on each daemon, asking for the expected names
 * and checking each answer against the answers it may rightly have.
 */
export class Load {
  private readonly probes: Probe[] = [];
  private readonly expected: Expectation;

  constructor(daemons: RunningDaemon[], expected: Expectation | Map<string, string[]>, private readonly options: LoadOptions = {}) {
    this.expected = expected instanceof Map ? unchanging(expected) : expected;
    for (const daemon of daemons) this.add(daemon);
  }

  /** Loads one more daemon, from now on (a node restarted during the scenario, once it answers). */
  add(daemon: RunningDaemon): void {
    const names = this.expected.names();
    for (let n = 0; n < (this.options.sockets ?? 1); n++) {
      this.probes.push(new Probe(daemon.dnsPort, names, {
        intervalMs: this.options.intervalMs ?? 10,
        timeoutMs: ANSWER_WINDOW_MS,
        client: this.options.tcp ? new TcpClient(daemon.dnsPort) : undefined,
        expect: (name, rcode, addresses, sentAt) => isRight(this.expected.allowed(name, sentAt, performance.now()), rcode, addresses),
      }).start());
    }
  }

  async stop(): Promise<LoadResult> {
    const results: ProbeResult[] = await Promise.all(this.probes.map((p) => p.stop()));
    const over = this.options.tcp ? ' (TCP)' : '';
    const failures = results.flatMap((r) => [
      ...(r.unanswered ? [`${r.unanswered} unanswered${over}`] : []),
      ...r.wrong.slice(0, 5).map((w) => `${w.name}${over}: rcode ${w.rcode} ${w.addresses.join(',')}`),
    ]);
    return {
      sent: results.reduce((n, r) => n + r.sent, 0),
      failed: results.reduce((n, r) => n + r.unanswered + r.wrong.length, 0),
      failures,
    };
  }
}

export interface RecordsResult {
  /** The most expected (name, address) pairs missing from one sample of one node. */
  recordsLost: number;
  /** Samples taken (one node asked for every name once). */
  samples: number;
  /** What that worst sample lacked ('' when nothing). */
  worst: string;
}

/**
 * The records check: every `everyMs`, every node `targets()` names is asked (over UDP,
 * from a socket of the sample's own) for every expected name, and what it lacks counted.
 * A node that stops or restarts during a sample does not count: what it did not answer
 * then is its outage, not a lost record.
 */
export class RecordsCheck {
  private running = true;
  private readonly loop: Promise<void>;
  private result: RecordsResult = { recordsLost: 0, samples: 0, worst: '' };

  constructor(private readonly targets: () => RunningDaemon[], private readonly expected: Expectation, everyMs = 500) {
    this.loop = (async () => {
      while (this.running) {
        const started = performance.now();
        await this.sample();
        await sleep(Math.max(0, everyMs - (performance.now() - started)));
      }
    })();
  }

  private async sample(): Promise<void> {
    const names = this.expected.names();
    const daemons = this.targets().filter(alive);
    const seen = await Promise.all(daemons.map((d) => this.ask(d, names)));
    const still = new Set(this.targets().filter(alive));
    seen.forEach((s, n) => {
      if (!still.has(daemons[n])) return;
      this.result.samples++;
      if (s.missing > this.result.recordsLost) this.result = { ...this.result, recordsLost: s.missing, worst: s.detail };
    });
  }

  private async ask(daemon: RunningDaemon, names: string[]): Promise<{ missing: number; detail: string }> {
    // A new source port each sample: with dns.workers the samples reach every thread.
    const client = new UdpClient(daemon.dnsPort);
    try {
      const lacking: string[] = [];
      let missing = 0;
      await Promise.all(names.map(async (name) => {
        const sentAt = performance.now();
        const reply = await client.ask(name, 1, ANSWER_WINDOW_MS);
        const lost = missingPairs(this.expected.allowed(name, sentAt, performance.now()), reply?.addresses ?? null);
        if (lost === 0) return;
        missing += lost;
        lacking.push(`${name} → ${reply ? reply.addresses.join(',') || `rcode ${reply.rcode}` : 'no answer'}`);
      }));
      return { missing, detail: `port ${daemon.dnsPort} lacked ${lacking.slice(0, 5).join('; ')}` };
    } finally {
      client.close();
    }
  }

  async stop(): Promise<RecordsResult> {
    this.running = false;
    await this.loop;
    return this.result;
  }
}

export interface Seen extends LoadResult, RecordsResult {
  /** The TCP load's share of `sent` and `failed`, when there was one. */
  tcp: LoadResult | null;
}

export interface WatchOptions {
  /** The daemons the steady load asks. */
  daemons: RunningDaemon[];
  /** The nodes the records check asks, looked up at each sample (default: `daemons`). */
  nodes?: () => RunningDaemon[];
  expected: Expectation | Map<string, string[]>;
  load?: LoadOptions;
  /** A TCP load beside the UDP one. */
  tcp?: Omit<LoadOptions, 'tcp'>;
}

/** Every scenario is watched this long at least, so that even a quick one is measured (hundreds of queries). */
const MIN_WATCH_MS = 2000;

/** What clients see while a scenario runs: the steady load (UDP, and TCP if asked for) and the records check. */
export class Watch {
  private readonly udp: Load;
  private readonly tcp: Load | null;
  private readonly records: RecordsCheck;
  private readonly started = performance.now();

  constructor(options: WatchOptions) {
    const expected = options.expected instanceof Map ? unchanging(options.expected) : options.expected;
    this.udp = new Load(options.daemons, expected, options.load);
    this.tcp = options.tcp ? new Load(options.daemons, expected, { ...options.tcp, tcp: true }) : null;
    const daemons = [...options.daemons];
    this.records = new RecordsCheck(options.nodes ?? (() => daemons), expected);
  }

  /** Loads one more daemon, from now on (e.g. a node restarted by the scenario). */
  add(daemon: RunningDaemon): void {
    this.udp.add(daemon);
    this.tcp?.add(daemon);
  }

  /** Stops (after MIN_WATCH_MS at least) and tells what was seen. */
  async stop(): Promise<Seen> {
    await sleep(Math.max(0, MIN_WATCH_MS - (performance.now() - this.started)));
    const [udp, tcp, records] = await Promise.all([this.udp.stop(), this.tcp?.stop() ?? null, this.records.stop()]);
    return {
      sent: udp.sent + (tcp?.sent ?? 0),
      failed: udp.failed + (tcp?.failed ?? 0),
      failures: [...udp.failures, ...(tcp?.failures ?? [])],
      ...records,
      tcp,
    };
  }
}

/** Adds a scenario's row to the summary: what clients saw, the daemons' RSS, and a note (what went wrong first). */
export function reportSeen(scenario: string, seen: Seen, rssBytes: number, note?: string): void {
  const problems = [...seen.failures.slice(0, 3), ...(seen.recordsLost ? [`records lost: ${seen.worst}`] : [])];
  report({ scenario, sent: seen.sent, failed: seen.failed, recordsLost: seen.recordsLost, rssBytes, note: [note, ...problems].filter(Boolean).join('; ') });
}

/** What holds in every scenario: every query answered rightly, and no node ever lacked a record it had to answer. */
export function expectNothingLost(seen: Seen, minSent = 100): void {
  expect(seen.failures).toEqual([]);
  expect(seen.worst, 'a record missing from a node').toBe('');
  expect(seen.recordsLost).toBe(0);
  expect(seen.samples).toBeGreaterThan(0);
  expect(seen.sent).toBeGreaterThan(minSent);
}

/** The one instance of `startOneInstanceDaemon`'s topology: its name and address. */
export const ONE_INSTANCE = { name: 'q-s0.web.default.cf.bosh', ip: '10.0.0.1' };

/** A daemon serving a file with one instance (ONE_INSTANCE), for scenarios that abuse the daemon itself. */
export function startOneInstanceDaemon(): Promise<RunningDaemon> {
  return startDaemon({ files: { 'topology.json': topologyJson([{ id: 'web-0', ip: ONE_INSTANCE.ip, index: 0 }]) }, config: { log: { level: 'info' } } });
}
