// Forwarding bench: presence-dns as the node-local resolver in front of dnsmasq (the
// upstream, serving a few names), against asking dnsmasq directly, driven by dnsperf on
// loopback. Latency at a fixed modest rate (so it measures the path, not queueing):
// through the cache, and with the cache off (every query forwarded: the real overhead of
// the hop); then queries/s of cache hits at full speed, beside a platform name answered by
// the same daemon for reference. `node --import tsx bench/forward.ts`.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, waitFor, type RunningDaemon } from '../test/helpers/daemon.ts';
import { dig } from '../test/helpers/dig.ts';
import { topologyJson } from '../test/helpers/topology.ts';
import { dnsperf, type PerfResult } from './dnsperf.ts';

const SECONDS = 5;
const FIXED_QPS = 2000;
const NAMES = Array.from({ length: 10 }, (_, i) => `host${i}.fwd.bench`);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

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

function row(path: string, load: string, r: PerfResult, base?: PerfResult): Record<string, string | number> {
  return {
    path, load, 'queries/s': Math.round(r.qps), 'lost/sent': `${r.lost}/${r.sent}`,
    'avg ms': Number.isFinite(r.avgMs) ? Number(r.avgMs.toFixed(3)) : '-', 'p99 ms': Number(r.p99Ms.toFixed(3)),
    'avg vs direct': base && Number.isFinite(r.avgMs / base.avgMs) ? `${(r.avgMs / base.avgMs).toFixed(2)}×` : '',
    'q/s vs direct': base ? `${(r.qps / base.qps).toFixed(2)}×` : '',
  };
}

export async function runForwardBench(): Promise<Array<Record<string, string | number>>> {
  const work = mkdtempSync(join(tmpdir(), 'presence-dns-fwd-bench-'));
  const queries = join(work, 'queries.txt');
  writeFileSync(queries, NAMES.map((n) => `${n} A\n`).join(''));
  const platformQueries = join(work, 'platform.txt');
  writeFileSync(platformQueries, 'aaaa-1.web.default.cf.bosh A\n');
  const upstream = await startUpstream();
  const daemons: RunningDaemon[] = [];
  try {
    const cached = await startForwarder(join(work, 'cached'), upstream.port, true);
    daemons.push(cached);
    const uncached = await startForwarder(join(work, 'uncached'), upstream.port, false);
    daemons.push(uncached);
    const perf = (port: number, qps?: number, file = queries) =>
      dnsperf({ port, queries: file, seconds: SECONDS, qps, clients: qps ? 1 : 4, outstanding: qps ? 20 : 200, scratch: join(work, 'perf.out') });
    const fixed = `${FIXED_QPS} q/s`;
    const direct = await perf(upstream.port, FIXED_QPS);
    const viaCache = await perf(cached.dnsPort, FIXED_QPS);
    const viaForward = await perf(uncached.dnsPort, FIXED_QPS);
    const directMax = await perf(upstream.port);
    const cacheMax = await perf(cached.dnsPort);
    const platformMax = await perf(cached.dnsPort, undefined, platformQueries);
    return [
      row('dnsmasq directly', fixed, direct),
      row('presence-dns, cache hits', fixed, viaCache, direct),
      row('presence-dns, cache off (forwarded)', fixed, viaForward, direct),
      row('dnsmasq directly', 'max', directMax),
      row('presence-dns, cache hits', 'max', cacheMax, directMax),
      row('presence-dns, platform name (reference)', 'max', platformMax, directMax),
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
    (err: Error) => {
      process.stderr.write(`forward bench failed: ${err.stack ?? err.message}\n`);
      process.exitCode = 1;
    },
  );
}
