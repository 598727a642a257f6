// Forwarding bench: presence-dns as the node-local resolver in front of dnsmasq (the
// upstream, serving a few names), against asking dnsmasq directly, driven by dnsperf on
// loopback. Latency at a fixed modest rate (so it measures the path, not queueing):
// through the cache, and with the cache off (every query forwarded: the real overhead of
// the hop); then queries/s of cache hits at full speed, beside a platform name answered by
// the same daemon for reference. `node --import tsx bench/forward.ts`.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, waitFor, type RunningDaemon } from '../test/helpers/daemon.ts';
import { dig } from '../test/helpers/dig.ts';
import { topologyJson } from '../test/helpers/topology.ts';
import { dnsperf, freePort, type PerfResult } from './dnsperf.ts';

const SECONDS = 5;
const FIXED_QPS = 2000;
const NAMES = Array.from({ length: 10 }, (_, i) => `host${i}.fwd.bench`);

async function startUpstream(): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn('dnsmasq', [
    '--keep-in-foreground', '--no-resolv', '--no-hosts', `--port=${port}`, '--listen-address=127.0.0.1',
    '--bind-interfaces', '--pid-file=', '--user=root', '--local-ttl=300',
    ...NAMES.map((name, i) => `--host-record=${name},10.9.0.${i + 1}`),
  ], { stdio: 'ignore' });
  await waitFor(async () => (await dig(port, NAMES[0], 'A', ['+time=1'])).status === 'NOERROR', 15_000, 'dnsmasq upstream');
  return { port, child };
}

async function startForwarder(dir: string, upstreamPort: number, cache: boolean): Promise<RunningDaemon> {
  const daemon = await startDaemon({
    dir,
    files: { 'topology.json': topologyJson([{ id: 'aaaa-1', ip: '10.0.0.1' }]) },
    config: { log: { level: 'info' }, forward: { enabled: true, upstreams: [`127.0.0.1:${upstreamPort}`], cache: { enabled: cache } } },
  });
  await waitFor(async () => (await dig(daemon.dnsPort, NAMES[0], 'A', ['+time=1'])).status === 'NOERROR', 15_000, 'forwarding');
  return daemon;
}

interface Target {
  path: string;
  port: number;
  queries: string;
}

interface Summary {
  qps: number;
  sent: number;
  lost: number;
  avgMs: number;
  p99Ms: number;
}

const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : NaN);
const fixed3 = (n: number) => (Number.isFinite(n) ? Number(n.toFixed(3)) : '-');
const times = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : '-');

/**
 * dnsperf against each target in turn, one-second slices round-robin, SECONDS slices
 * each: a burst of load from other processes hits every target alike instead of one.
 * Latency is the median of the slices' averages and p99s.
 */
async function interleaved(targets: Target[], scratch: string, qps?: number): Promise<Summary[]> {
  const slices: PerfResult[][] = targets.map(() => []);
  for (let round = 0; round < SECONDS; round++) {
    for (const [i, t] of targets.entries()) {
      slices[i].push(await dnsperf({
        port: t.port, queries: t.queries, seconds: 1, qps, clients: qps ? 1 : 4, outstanding: qps ? 20 : 200, scratch,
      }));
    }
  }
  return slices.map((runs) => ({
    qps: runs.reduce((n, r) => n + r.qps, 0) / runs.length,
    sent: runs.reduce((n, r) => n + r.sent, 0),
    lost: runs.reduce((n, r) => n + r.lost, 0),
    avgMs: median(runs.map((r) => r.avgMs).filter(Number.isFinite)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
  }));
}

function rows(load: string, targets: Target[], results: Summary[]): Array<Record<string, string | number>> {
  const base = results[0];
  return results.map((r, i) => ({
    path: targets[i].path, load, 'queries/s': Math.round(r.qps), 'lost/sent': `${r.lost}/${r.sent}`,
    'avg ms': fixed3(r.avgMs), 'p99 ms': fixed3(r.p99Ms),
    'avg vs direct': i > 0 ? times(r.avgMs, base.avgMs) : '',
    'q/s vs direct': i > 0 ? times(r.qps, base.qps) : '',
  }));
}

export async function runForwardBench(): Promise<Array<Record<string, string | number>>> {
  const work = mkdtempSync(join(tmpdir(), 'presence-dns-fwd-bench-'));
  const queries = join(work, 'queries.txt');
  writeFileSync(queries, NAMES.map((n) => `${n} A\n`).join(''));
  const platformQueries = join(work, 'platform.txt');
  writeFileSync(platformQueries, 'aaaa-1.web.default.cf.bosh A\n');
  const scratch = join(work, 'perf.out');
  const upstream = await startUpstream();
  const daemons: RunningDaemon[] = [];
  try {
    const cached = await startForwarder(join(work, 'cached'), upstream.port, true);
    daemons.push(cached);
    const uncached = await startForwarder(join(work, 'uncached'), upstream.port, false);
    daemons.push(uncached);
    const direct: Target = { path: 'dnsmasq directly', port: upstream.port, queries };
    const hits: Target = { path: 'presence-dns, cache hits', port: cached.dnsPort, queries };
    const latency = [direct, hits, { path: 'presence-dns, cache off (every query forwarded)', port: uncached.dnsPort, queries }];
    const throughput = [direct, hits, { path: 'presence-dns, platform name (reference)', port: cached.dnsPort, queries: platformQueries }];
    return [
      ...rows(`${FIXED_QPS} q/s`, latency, await interleaved(latency, scratch, FIXED_QPS)),
      ...rows('max', throughput, await interleaved(throughput, scratch)),
    ];
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    upstream.child.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runForwardBench().then(
    (rows) => console.table(rows),
    (err: unknown) => {
      process.stderr.write(`forward bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
