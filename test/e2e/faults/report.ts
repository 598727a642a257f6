// The fault suite's shared parts: how long each scenario runs (FAULTS_LONG=1 picks the
// issue's long versions), what a client saw under a steady UDP load on every daemon of a
// scenario, the daemon's RSS, and the row each scenario adds to the summary table that
// the suite's global setup prints at the end of the run.
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type RunningDaemon } from '../../helpers/daemon.ts';
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
  return Math.max(...daemons.map((d) => rssOf(d.process.pid!)));
}

export interface LoadResult {
  sent: number;
  /** Unanswered, or answered with anything but the expected addresses. */
  failed: number;
  failures: string[];
}

/**
 * A steady UDP load (test/helpers/probe.ts) on each daemon, asking for known names and
 * checking each answer against the addresses they must have.
 */
export class Load {
  private readonly probes: Probe[];

  /** `expected`: name → the sorted addresses a right answer carries. */
  constructor(daemons: RunningDaemon[], expected: Map<string, string[]>, intervalMs = 10) {
    const want = (name: string) => expected.get(name)!.join(',');
    this.probes = daemons.map((d) => new Probe(d.dnsPort, [...expected.keys()], {
      intervalMs, timeoutMs: 1500, expect: (name, rcode, addresses) => rcode === 0 && addresses.join(',') === want(name),
    }).start());
  }

  async stop(): Promise<LoadResult> {
    const results: ProbeResult[] = await Promise.all(this.probes.map((p) => p.stop()));
    const failures = results.flatMap((r) => [
      ...(r.unanswered ? [`${r.unanswered} unanswered`] : []),
      ...r.wrong.slice(0, 5).map((w) => `${w.name}: rcode ${w.rcode} ${w.addresses.join(',')}`),
    ]);
    return {
      sent: results.reduce((n, r) => n + r.sent, 0),
      failed: results.reduce((n, r) => n + r.unanswered + r.wrong.length, 0),
      failures,
    };
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The one instance of `startOneInstanceDaemon`'s topology: its name and address. */
export const ONE_INSTANCE = { name: 'q-s0.web.default.cf.bosh', ip: '10.0.0.1' };

/** A daemon serving a file with one instance (ONE_INSTANCE), for scenarios that abuse the daemon itself. */
export function startOneInstanceDaemon(): Promise<RunningDaemon> {
  return startDaemon({ files: { 'topology.json': topologyJson([{ id: 'web-0', ip: ONE_INSTANCE.ip, index: 0 }]) }, config: { log: { level: 'info' } } });
}
