// `npm run bench`: presence-dns against dnsmasq serving the same names, against a
// minimal Node.js UDP echo (the runtime's limit) and against that echo with our fast
// path in front of its send (bench/fastpath-server.ts), side by side in one run, driven
// by dnsperf over loopback; then load/index time and RSS at 200 k instances, a reload
// every second under load, p99 at a fixed 20 k queries/s, the forwarding bench
// (bench/forward.ts) when it exists, the churn bench (bench/churn.ts), and the footprint
// (bench/memory.ts: RSS of the DNS-only daemon and of `npm start`, start to first
// answer). Bounded (BENCH_SECONDS per run, default 10) and
// it stops every process it started. Ratios matter; absolute figures depend on what
// else the machine is doing.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { dig } from '../test/helpers/dig.ts';
import { startDaemon, waitFor, type RunningDaemon } from '../test/helpers/daemon.ts';
import { required } from '../test/helpers/required.ts';
import { metric } from '../test/presence/daemons.ts';
import { dnsperf, combine, dnsperfRun, type PerfResult, type PerfRun } from './dnsperf.ts';
import { runMemoryBench, treeRssMb } from './memory.ts';
import { pidOf } from './proc.ts';
import { startDnsmasq, startKnot, startNsd, writeZone, type Peer } from './peers.ts';
import { generate, writeHosts, writeQueries, writeTopology } from './topology.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = 5;
const SIZES = (process.env.BENCH_SIZES ?? '100,10000,200000,600000').split(',').map(Number);
const LARGEST = Math.max(...SIZES);
const RELOAD_SIZE = SIZES.includes(10_000) ? 10_000 : SIZES[0];
const FIXED_QPS = 20_000;
const ROOT = join(import.meta.dirname, '..');
const work = join(tmpdir(), `presence-dns-bench-${process.pid}`);
const children = new Set<ChildProcess>();
const daemons = new Set<RunningDaemon>();

function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Waits for a peer to answer; loading a large hosts file or zone takes dnsmasq and Knot a while (600 k: ~1 min). */
async function answering(port: number, name: string, records: number): Promise<void> {
  await waitFor(async () => (await dig(port, name, 'A', ['+time=1'])).status === 'NOERROR', Math.max(30_000, records / 4), `a server on port ${port}`);
}

/** A bench server of ours (it prints "listening <port>"): the echo, or the echo with our fast path. */
async function startListening(args: string[]): Promise<{ port: number; child: ChildProcess }> {
  const child = track(spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] }));
  const port = await new Promise<number>((resolve) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(required(/listening (\d+)/.exec(d.toString()), 'the port the server listens on')[1])));
  });
  return { port, child };
}

async function startPresence(dir: string, workers: number | 'auto' = 1): Promise<RunningDaemon> {
  const daemon = await startDaemon({ dir, config: { topology: { file: join(dir, 'topology.json') }, dns: { workers }, log: { level: 'info' } } });
  daemons.add(daemon);
  return daemon;
}

async function stopPresence(daemon: RunningDaemon): Promise<void> {
  await daemon.stop();
  daemons.delete(daemon);
}

interface Target { server: string; records: number; port: number; queries: string; pid: number }
/** `cpuUs`: the server's own CPU time per answered query, µs — independent of how busy the client was. */
interface Row { server: string; records: number; result: PerfResult; cpuUs: number }

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Drives every target for SECONDS in total, in ROUNDS slices taken in turn, so that
 * a busy moment on a shared machine hits all of them alike; caches are filled first
 * by one pass through the names (ours is filled lazily).
 */
async function compare(targets: Target[], qps?: number): Promise<Row[]> {
  for (const t of targets) await dnsperf({ port: t.port, queries: t.queries, seconds: 30, scratch: join(work, 'warm.out'), passes: 1 });
  const runs = targets.map((): PerfRun[] => []);
  const cpu = targets.map(() => 0);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, t] of targets.entries()) {
      const before = cpuSeconds(t.pid);
      runs[i].push(await dnsperfRun({ port: t.port, queries: t.queries, seconds: SECONDS / ROUNDS, qps, scratch: join(work, 'perf.out') }));
      cpu[i] += cpuSeconds(t.pid) - before;
    }
  }
  return targets.map((t, i) => {
    const answered = runs[i].reduce((n, r) => n + r.completed, 0);
    return { server: t.server, records: t.records, result: combine(runs[i]), cpuUs: (cpu[i] / answered) * 1e6 };
  });
}

const ms = (n: number) => n.toFixed(2);
const ratio = (a: number, b: number | undefined) => (b ? `${(a / b).toFixed(2)}×` : '-');

/** The topology, hosts file and query file of `size` instances, in a directory of their own. */
function prepare(size: number) {
  const dir = join(work, `t${size}`);
  mkdirSync(dir, { recursive: true });
  const topology = generate(size);
  const file = join(dir, 'topology.json');
  writeTopology(file, topology, 1);
  writeHosts(join(dir, 'hosts'), topology);
  const queries = join(dir, 'queries.txt');
  writeQueries(queries, topology);
  return { dir, topology, file, queries };
}

async function main(): Promise<void> {
  mkdirSync(work, { recursive: true });
  const cores = availableParallelism();
  process.stdout.write(`presence-dns bench: ${cores} cores (${cpus()[0]?.model ?? 'unknown'}), node ${process.version}, `
    + `dnsperf ${SECONDS} s per server and table row (${ROUNDS} interleaved slices), loopback; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
  // BENCH_ONLY=workers: the dns.workers rows alone (then RSS with 1 and 2 threads at the largest size).
  if (process.env.BENCH_ONLY === 'workers') {
    prepare(LARGEST);
    await workersBench(RELOAD_SIZE);
    await workersMemory(LARGEST);
    return;
  }
  const rows: Row[] = [];
  const fixed: Row[] = [];
  const extra: Array<[string, string]> = [];
  const echo = await startListening([join(ROOT, 'bench/echo-server.ts'), '0']);
  const echoQueries = join(work, 'echo-queries.txt');
  writeFileSync(echoQueries, 'a.bench A\n');

  for (const size of SIZES) {
    const { dir, topology, file, queries } = prepare(size);

    const started = performance.now();
    const daemon = await startPresence(dir);
    const startMs = performance.now() - started;
    const dnsmasq = trackPeer(await startDnsmasq(join(dir, 'hosts'), size));
    await answering(dnsmasq.port, topology.names[0], size);
    // The echo with our fast path in front of its send: how much of the gap to the echo is the fast path.
    const fastEcho = await startListening(['--import', 'tsx', join(ROOT, 'bench/fastpath-server.ts'), file]);
    const targets: Target[] = [
      { server: 'presence-dns', records: size, port: daemon.dnsPort, queries, pid: pidOf(daemon.process) },
      { server: 'dnsmasq', records: size, port: dnsmasq.port, queries, pid: pidOf(dnsmasq.child) },
      { server: 'echo', records: size, port: echo.port, queries: echoQueries, pid: pidOf(echo.child) },
      { server: 'echo + fast path', records: size, port: fastEcho.port, queries, pid: pidOf(fastEcho.child) },
    ];
    rows.push(...await compare(targets));
    if (size === LARGEST) {
      extra.push([`presence-dns RSS with ${size} records after the runs (answer cache full)`, `${treeRssMb(pidOf(daemon.process))} MB`]);
      extra.push([`presence-dns start to ready with ${size} records (process start, load, index)`, `${Math.round(startMs)} ms`]);
    }
    if (size === RELOAD_SIZE) {
      fixed.push(...await compare(targets, FIXED_QPS));
      extra.push(await reloadUnderLoad(daemon, file, queries));
    }
    await stopChild(dnsmasq.child);
    await stopChild(fastEcho.child);
    await stopPresence(daemon);
  }
  await stopChild(echo.child);

  // Load + index in a fresh process, as the daemon does it, for the largest topology.
  const load = await new Promise<string>((resolve, reject) => {
    let out = '';
    const child = track(spawn(process.execPath, ['--expose-gc', '--import', 'tsx', join(ROOT, 'bench/load.ts'), join(work, `t${LARGEST}`, 'topology.json')],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] }));
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`load.ts exited with ${code}`))));
  });
  const loaded = JSON.parse(load) as { ms: number; rssMb: number; imageMb: number };
  extra.push([`read + compile ${LARGEST} records as the topology worker does (fresh process, after GC; target ≤ 2 s)`,
    `${loaded.ms} ms (${loaded.ms <= 2000 ? 'met' : 'MISSED'}), image ${loaded.imageMb} MB, RSS ${loaded.rssMb} MB`]);

  printTable('Flat out (dnsperf -c 4 -q 200), queries of instance names', rows);
  if (fixed.length) printTable(`Fixed rate (dnsperf -Q ${FIXED_QPS}), ${RELOAD_SIZE} records`, fixed);
  process.stdout.write('\n');
  for (const [what, value] of extra) process.stdout.write(`${what}: ${value}\n`);
  const mine = rows.filter((r) => r.server === 'presence-dns');
  if (mine.length > 1) {
    const [small, big] = [mine[0], mine[mine.length - 1]];
    process.stdout.write(`presence-dns queries/s with ${big.records} records vs ${small.records}: ${ratio(big.result.qps, small.result.qps)}\n`);
  }
  await workersBench(RELOAD_SIZE);
  await workersMemory(LARGEST);
  await forwardBench();
  // BENCH_CHURN=0 skips it (it takes ~10 minutes; `npm run bench:churn` runs it alone).
  if (process.env.BENCH_CHURN !== '0') await churnBench();
  process.stdout.write('\nFootprint\n');
  for (const [what, value] of await runMemoryBench()) process.stdout.write(`${what}: ${value}\n`);
}

function trackPeer(peer: Peer): Peer {
  track(peer.child);
  return peer;
}

/**
 * dns.workers: queries/s with 1, 2 and `auto` threads answering, beside dnsmasq, NSD and
 * Knot DNS serving the same names, all in one interleaved run, with each one's RSS.
 */
async function workersBench(size: number): Promise<void> {
  const dir = join(work, `workers-${size}`);
  mkdirSync(dir, { recursive: true });
  const topology = generate(size);
  writeTopology(join(dir, 'topology.json'), topology, 1);
  writeHosts(join(dir, 'hosts'), topology);
  writeZone(join(dir, 'bosh.zone'), topology);
  const queries = join(dir, 'queries.txt');
  writeQueries(queries, topology);
  const auto = Math.min(availableParallelism(), 8);
  const configs: Array<[string, number | 'auto']> = [['1 thread', 1], ['2 threads', 2]];
  if (auto !== 2 && auto !== 1) configs.push([`auto (${auto})`, 'auto']);
  const presence: Array<[string, RunningDaemon]> = [];
  for (const [label, workers] of configs) presence.push([label, await startPresence(dir, workers)]);
  const peers: Array<[string, Peer]> = [
    ['dnsmasq', trackPeer(await startDnsmasq(join(dir, 'hosts'), size))],
    ['nsd', trackPeer(await startNsd(dir, 'bosh.zone'))],
    ['knot', trackPeer(await startKnot(dir, 'bosh.zone'))],
  ];
  for (const [, p] of peers) await answering(p.port, topology.names[0], size);
  const targets: Target[] = [
    ...presence.map(([label, d]): Target => ({ server: `presence-dns ${label}`, records: size, port: d.dnsPort, queries, pid: pidOf(d.process) })),
    ...peers.map(([label, p]): Target => ({ server: label, records: size, port: p.port, queries, pid: pidOf(p.child) })),
  ];
  const rows = await compare(targets);
  const one = rows[0].result.qps;
  const dnsmasq = required(rows.find((r) => r.server === 'dnsmasq'), 'the dnsmasq row').result.qps;
  process.stdout.write(`\nWorkers (dns.workers), ${size} records, ${availableParallelism()} cores (dnsperf shares them)\n`);
  const misses = await Promise.all(presence.map(([, d]) => answerCacheMisses(d)));
  process.stdout.write('| server | queries/s | lost/sent | CPU µs/query | p99 ms | vs 1 thread | vs dnsmasq | RSS MB | answers encoded |\n|---|---|---|---|---|---|---|---|---|\n');
  for (const [i, r] of rows.entries()) {
    const pid = targets[i].pid;
    process.stdout.write(`| ${r.server} | ${Math.round(r.result.qps)} | ${r.result.lost}/${r.result.sent} | ${r.cpuUs.toFixed(1)} | ${ms(r.result.p99Ms)} | `
      + `${r.server.startsWith('presence') ? ratio(r.result.qps, one) : ''} | ${ratio(r.result.qps, dnsmasq)} | ${treeRssMb(pid)} | ${misses[i] ?? ''} |\n`);
  }
  const two = rows[1].result.qps;
  process.stdout.write(`2 threads vs 1: ${ratio(two, one)} (target ≥ 1.7× where 4+ cores are free; ${availableParallelism()} cores here, one taken by dnsperf)\n`);
  for (const [, d] of presence) await stopPresence(d);
  for (const [, p] of peers) await stopChild(p.child);
}

/**
 * RSS with 1 and 2 threads answering at `size` instances, after three passes through
 * every name from 13 client sockets: the kernel pins a socket to one thread, and with 13
 * sockets each name comes by several of them, so each thread meets (nearly) every name,
 * as it does with many real clients. The image and the answer cache are shared, not
 * copied; "encoded" counts the answers the threads encoded between them.
 */
async function workersMemory(size: number): Promise<void> {
  const dir = join(work, `t${size}`);
  const queries = join(dir, 'queries.txt');
  const rss: number[] = [];
  const encoded: number[] = [];
  for (const workers of [1, 2]) {
    const daemon = await startPresence(dir, workers);
    await dnsperf({ port: daemon.dnsPort, queries, seconds: 120, scratch: join(work, 'warm.out'), passes: 3, clients: 13 });
    rss.push(treeRssMb(pidOf(daemon.process)));
    encoded.push(await answerCacheMisses(daemon));
    await stopPresence(daemon);
  }
  const r = rss[1] / rss[0];
  process.stdout.write(`RSS at ${size} records after 3 passes through every name: 1 thread ${rss[0]} MB (${encoded[0]} answers encoded), `
    + `2 threads ${rss[1]} MB (${encoded[1]} encoded) (${r.toFixed(2)}×, target ≤ 1.3×: ${r <= 1.3 ? 'met' : 'MISSED'})\n`);
}

/** Answers the daemon's threads have encoded for their fast-path cache (its misses), all threads together. */
const answerCacheMisses = (daemon: RunningDaemon) => metric(daemon, 'presence_dns_answer_cache_misses_total');

/** The churn benchmark (bench/churn.ts) in a process of its own, printing its own table. */
async function churnBench(): Promise<void> {
  const child = track(spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/churn.ts')], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] }));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`bench/churn.ts exited with ${code}`);
}

/** A new topology version every second while dnsperf runs flat out. */
async function reloadUnderLoad(daemon: RunningDaemon, file: string, queries: string): Promise<[string, string]> {
  const text = readFileSync(file, 'utf8');
  let version = 1;
  const reloads = setInterval(() => {
    version++;
    writeFileSync(`${file}.tmp`, text.replace(/^\{"version":\d+/, `{"version":${version}`));
    renameSync(`${file}.tmp`, file);
  }, 1000);
  const before = await reloadCount(daemon);
  const during = await dnsperf({ port: daemon.dnsPort, queries, seconds: SECONDS, scratch: join(work, 'reload.out') });
  clearInterval(reloads);
  const done = (await reloadCount(daemon)) - before;
  return [`reload every 1 s under load, ${RELOAD_SIZE} records (${done} reloads in ${SECONDS} s)`,
    `${Math.round(during.qps)} q/s, lost ${during.lost} of ${during.sent}, p99 ${ms(during.p99Ms)} ms`];
}

const reloadCount = (daemon: RunningDaemon) => metric(daemon, 'presence_dns_topology_reloads_total');

function printTable(title: string, rows: Row[]): void {
  const lines = rows.map((r) => {
    const echo = rows.find((d) => d.server === 'echo' && d.records === r.records)?.result.qps;
    const dnsmasq = rows.find((d) => d.server === 'dnsmasq' && d.records === r.records)?.result.qps;
    const mine = r.server === 'presence-dns' || r.server === 'echo + fast path';
    return [r.server, String(r.records), String(Math.round(r.result.qps)), `${r.result.lost}/${r.result.sent}`, r.cpuUs.toFixed(1),
      ms(r.result.avgMs), ms(r.result.p99Ms), mine ? ratio(r.result.qps, dnsmasq) : '', mine ? ratio(r.result.qps, echo) : ''];
  });
  const header = ['server', 'records', 'queries/s', 'lost/sent', 'CPU µs/query', 'avg ms', 'p99 ms', 'vs dnsmasq', 'vs echo'];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  process.stdout.write(`\n${title}\n${fmt(header)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n${lines.map(fmt).join('\n')}\n`);
}

async function forwardBench(): Promise<void> {
  const path = join(import.meta.dirname, 'forward.ts');
  if (!existsSync(path)) return;
  // A variable specifier: the file belongs to the forwarding module and may not exist.
  const specifier = './forward.ts';
  const mod = (await import(specifier)) as { runForwardBench(): Promise<Array<Record<string, string | number>>> };
  const result = await mod.runForwardBench();
  process.stdout.write('\nForwarding\n');
  console.table(result);
}

async function cleanup(): Promise<void> {
  await Promise.all([...daemons].map((d) => d.stop()));
  await Promise.all([...children].map(stopChild));
  rmSync(work, { recursive: true, force: true });
}

process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
main().then(cleanup, async (err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  await cleanup();
  process.exitCode = 1;
});
