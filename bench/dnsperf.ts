// Runs dnsperf against one server and reads its figures: queries/s, lost, and the
// latency of every answer (from -v, written to a file so that printing them costs
// dnsperf as little as possible), from which average and p99 are computed.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { required } from '../test/helpers/required.ts';

export interface PerfOptions {
  port: number;
  queries: string;
  seconds: number;
  /** Stop after this many passes through the query file (dnsperf -n). */
  passes?: number;
  /** Fixed rate (dnsperf -Q); unset = as fast as the server answers. */
  qps?: number;
  clients?: number;
  outstanding?: number;
  /** Where -v output goes while the run lasts. */
  scratch: string;
}

export interface PerfResult {
  qps: number;
  sent: number;
  lost: number;
  avgMs: number;
  p99Ms: number;
}

/** One dnsperf run, raw enough to be combined with others (see `combine`). */
export interface PerfRun {
  sent: number;
  completed: number;
  lost: number;
  seconds: number;
  /** Seconds, one per answered query. */
  latencies: Float64Array;
}

function figure(text: string, label: string): number {
  const m = new RegExp(`${label}:\\s+([\\d.]+)`).exec(text);
  if (!m) throw new Error(`dnsperf output lacks "${label}":\n${text}`);
  return Number(m[1]);
}

/** One run's figures. */
export async function dnsperf(o: PerfOptions): Promise<PerfResult> {
  return combine([await dnsperfRun(o)]);
}

/** One run, raw: for combining interleaved slices with `combine`. */
export async function dnsperfRun(o: PerfOptions): Promise<PerfRun> {
  const args = ['-s', '127.0.0.1', '-p', String(o.port), '-d', o.queries, '-l', String(o.seconds),
    '-c', String(o.clients ?? 4), '-q', String(o.outstanding ?? 200), '-t', '2', '-v'];
  if (o.qps) args.push('-Q', String(o.qps));
  if (o.passes) args.push('-n', String(o.passes));
  const out = openSync(o.scratch, 'w');
  let stderr = '';
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('dnsperf', args, { stdio: ['ignore', out, 'pipe'] });
    required(child.stderr, 'dnsperf\'s stderr').on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', resolve);
  });
  closeSync(out);
  const text = readFileSync(o.scratch, 'latin1');
  rmSync(o.scratch, { force: true });
  if (code !== 0) throw new Error(`dnsperf exited with ${code}: ${stderr}`);
  const latencies: number[] = [];
  for (let at = text.indexOf('\n> '); at !== -1; at = text.indexOf('\n> ', at + 1)) {
    const end = text.indexOf('\n', at + 1);
    const line = text.slice(at + 1, end === -1 ? undefined : end);
    // Answered queries end in their latency; other "> " lines (timeouts) do not count.
    const latency = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(latency)) latencies.push(latency);
  }
  const summary = text.slice(text.lastIndexOf('Statistics:'));
  return {
    sent: figure(summary, 'Queries sent'),
    completed: figure(summary, 'Queries completed'),
    lost: figure(summary, 'Queries lost'),
    seconds: figure(summary, 'Run time \\(s\\)'),
    latencies: Float64Array.from(latencies),
  };
}

/** Figures over several runs against one server, as if they were one run. */
export function combine(runs: PerfRun[]): PerfResult {
  const sum = (f: (r: PerfRun) => number) => runs.reduce((n, r) => n + f(r), 0);
  const all = new Float64Array(sum((r) => r.latencies.length));
  let at = 0;
  for (const r of runs) {
    all.set(r.latencies, at);
    at += r.latencies.length;
  }
  all.sort();
  const total = all.reduce((n, v) => n + v, 0);
  return {
    qps: sum((r) => r.completed) / sum((r) => r.seconds),
    sent: sum((r) => r.sent),
    lost: sum((r) => r.lost),
    avgMs: all.length ? (total / all.length) * 1000 : 0,
    p99Ms: all.length ? all[Math.min(all.length - 1, Math.floor(all.length * 0.99))] * 1000 : 0,
  };
}

/** A loopback port free for both UDP and TCP (the DNS servers started here bind both). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve) => {
      const s = createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        const { port: bound } = s.address();
        s.close(() => resolve(bound));
      });
    });
    const tcpFree = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (tcpFree) return port;
  }
}
