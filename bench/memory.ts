// The footprint bench (part of `npm run bench`; alone: `npm run build && node --import tsx
// bench/memory.ts`): the daemon's RSS in the configurations operators compare it in, each
// beside its target with met/MISSED, and where the memory goes — each thread's V8 heap (in
// use, reserved, and held outside it: array buffers such as PGlite's) read from the
// daemon's own `presence_dns_thread_heap_bytes`, and the rest of the RSS (code, the runtime,
// buffers no heap accounts for: the topology image and the answer cache are shared memory).
// Configurations: a DNS-only daemon on 100 records after 200 queries, and under dnsperf
// over 10,000 names; 200,000 records after 5 replacements of the file; `npm start` on the
// embedded database, its first start (initdb: the peak) and a restart (steady), npm's own
// process not counted; and spawn to first answer. Every process it starts is stopped.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildQuery } from '../test/dns/client.ts';
import { DAEMON_ENTRY } from '../test/helpers/daemon.ts';
import { required } from '../test/helpers/required.ts';
import { dnsperf, freePort } from './dnsperf.ts';
import { pidOf } from './proc.ts';
import { generate, writeQueries, writeTopology } from './topology.ts';

const ROOT = join(import.meta.dirname, '..');
const SMALL = 100;
const MEDIUM = 10_000;
const LARGE = Number(process.env.BENCH_MEMORY_LARGE ?? 200_000);
const LOAD_SECONDS = 3;
const SETTLE_MS = 2000;
const ANSWER_TIMEOUT_MS = 60_000;
/** Starts of the small DNS-only daemon timed (the machine is shared: the median and the range). */
const STARTS = 7;
const REPLACEMENTS = 5;

/** RSS of a process, KB (0 once it is gone). */
function rssKb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** RSS of a process and all its descendants, MB. */
export function treeRssMb(pid: number): number {
  const walk = (p: number): number => rssKb(p) + childrenOf(p).reduce((n, c) => n + walk(c), 0);
  return Math.round(walk(pid) / 1024);
}

/** The daemon's process under `npm start` (npm → sh → node bin/presence-dns.js), or null before it is there. */
function daemonUnder(pid: number): number | null {
  for (const child of childrenOf(pid)) {
    try {
      if (readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('presence-dns.js')) return child;
    } catch {
      continue;
    }
    const found = daemonUnder(child);
    if (found !== null) return found;
  }
  return null;
}

/** Resolves once `name` gets an answer over UDP on `port`, polling every 2 ms; ms since `since`. */
async function firstAnswer(port: number, name: string, since: number, sample?: () => void): Promise<number> {
  const socket = createSocket('udp4');
  const query = buildQuery(name);
  try {
    return await new Promise<number>((resolve, reject) => {
      const poll = setInterval(() => {
        sample?.();
        socket.send(query, port, '127.0.0.1');
      }, 2);
      const timeout = setTimeout(() => {
        clearInterval(poll);
        reject(new Error(`no answer for ${name} on port ${port} within ${ANSWER_TIMEOUT_MS} ms`));
      }, ANSWER_TIMEOUT_MS);
      socket.on('message', (reply) => {
        // An answer (ANCOUNT > 0), not a SERVFAIL or an empty reply from a daemon still loading.
        if (reply.length < 12 || reply.readUInt16BE(6) === 0) return;
        clearInterval(poll);
        clearTimeout(timeout);
        resolve(performance.now() - since);
      });
    });
  } finally {
    socket.close();
  }
}

async function stop(child: ChildProcess, group = false): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  if (group) process.kill(-pidOf(child), 'SIGTERM');
  else child.kill('SIGTERM');
  const force = setTimeout(() => (group ? process.kill(-pidOf(child), 'SIGKILL') : child.kill('SIGKILL')), 10_000);
  await exited;
  clearTimeout(force);
}

/** "median ms (min–max)" of some durations. */
function spread(ms: number[]): string {
  const sorted = [...ms].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  return sorted.length === 1 ? `${Math.round(median)} ms` : `${Math.round(median)} ms (${Math.round(sorted[0])}–${Math.round(sorted[sorted.length - 1])})`;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

/** Where a daemon's RSS goes: each thread's heap in use / reserved / outside it, MB, and what no heap accounts for. */
export interface Breakdown {
  rssMb: number;
  threads: Array<{ thread: string; usedMb: number; totalMb: number; externalMb: number }>;
  /** RSS less every heap's reserved and external memory: code, the runtime, shared buffers. */
  restMb: number;
}

const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

/** The breakdown of the daemon `pid`, from its admin API's per-thread heap metrics. */
async function breakdown(pid: number, adminPort: number): Promise<Breakdown> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const heaps = new Map<string, { used: number; total: number; external: number }>();
  for (const m of text.matchAll(/^presence_dns_thread_heap_bytes\{thread="([^"]+)",kind="(used|total|external)"\} (\S+)$/gm)) {
    const h = heaps.get(m[1]) ?? { used: 0, total: 0, external: 0 };
    h[m[2] as 'used' | 'total' | 'external'] = Number(m[3]);
    heaps.set(m[1], h);
  }
  const rssMb = treeRssMb(pid);
  const threads = [...heaps].map(([thread, h]) => ({ thread, usedMb: mb(h.used), totalMb: mb(h.total), externalMb: mb(h.external) }));
  const accounted = threads.reduce((n, t) => n + t.totalMb + t.externalMb, 0);
  return { rssMb, threads, restMb: Math.round((rssMb - accounted) * 10) / 10 };
}

interface DnsOnlyRun {
  firstAnswerMs: number[];
  afterQueries: Breakdown;
  underLoad: Breakdown | null;
  afterReplacements: Breakdown | null;
}

/** The Node flags `npm start`, the container image and the systemd unit run the daemon with. */
const SHIPPED_NODE_FLAGS = ['--max-semi-space-size=1'];

/** A DNS-only daemon on `records` generated records: spawn to first answer, then its footprint after 200 queries, under dnsperf, and after replacements of its file. */
async function dnsOnly(work: string, records: number, options: { starts?: number; load?: boolean; replacements?: number } = {}): Promise<DnsOnlyRun> {
  const dir = join(work, `dns-${records}`);
  mkdirSync(dir, { recursive: true });
  const topology = generate(records);
  const file = join(dir, 'topology.json');
  writeTopology(file, topology, 1);
  writeQueries(join(dir, 'queries.txt'), topology);
  const [port, adminPort] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    dns: { listen: [{ address: '127.0.0.1', port }] }, admin: { address: '127.0.0.1', port: adminPort },
    topology: { file }, forward: { enabled: false },
    sync: { enabled: false }, registrar: { enabled: false }, reaper: { enabled: false }, log: { level: 'warn' },
  }));
  const spawnDaemon = () => spawn(process.execPath, [...SHIPPED_NODE_FLAGS, DAEMON_ENTRY, 'start', '--config', join(dir, 'config.json')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const firstAnswerMs: number[] = [];
  for (let i = 1; i < (options.starts ?? 1); i++) {
    const since = performance.now();
    const child = spawnDaemon();
    try {
      firstAnswerMs.push(await firstAnswer(port, topology.names[0], since));
    } finally {
      await stop(child);
    }
  }
  const since = performance.now();
  const child = spawnDaemon();
  try {
    firstAnswerMs.push(await firstAnswer(port, topology.names[0], since));
    const client = createSocket('udp4');
    for (let q = 0; q < 200; q++) client.send(buildQuery(topology.names[q % topology.names.length]), port, '127.0.0.1');
    await settle();
    client.close();
    const afterQueries = await breakdown(pidOf(child), adminPort);
    let underLoad: Breakdown | null = null;
    if (options.load) {
      await dnsperf({ port, queries: join(dir, 'queries.txt'), seconds: LOAD_SECONDS, scratch: join(dir, 'perf.out') });
      await settle();
      underLoad = await breakdown(pidOf(child), adminPort);
    }
    let afterReplacements: Breakdown | null = null;
    if (options.replacements) {
      for (let v = 2; v <= options.replacements + 1; v++) {
        writeTopology(`${file}.next`, topology, v);
        renameSync(`${file}.next`, file);
        const want = `presence_dns_topology_revision ${v}`;
        for (const deadline = Date.now() + 120_000; Date.now() < deadline;) {
          if ((await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()).includes(want)) break;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      await settle();
      afterReplacements = await breakdown(pidOf(child), adminPort);
    }
    return { firstAnswerMs, afterQueries, underLoad, afterReplacements };
  } finally {
    await stop(child);
  }
}

interface NpmStartRun {
  /** npm's own process left out. */
  daemonMb: number;
  peakMb: number;
  firstAnswerMs: number;
  breakdown: Breakdown;
}

/** `npm start` as a user runs it (embedded PGlite, the example instances), on free ports and a scratch data dir. */
async function npmStart(work: string): Promise<NpmStartRun> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const since = performance.now();
  const child = spawn('npm', ['start', '--silent', '--',
    '--set', `dns.listen=[{"address":"127.0.0.1","port":${port}}]`, '--set', `admin.port=${adminPort}`, '--set', 'forward.enabled=false',
    '--set', `database.embedded_dir=${join(work, 'pglite')}`, '--set', `topology.file=${join(work, 'npm-topology.json')}`,
    '--set', 'log.level=warn',
  ], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], detached: true });
  let peakMb = 0;
  const sample = () => {
    const daemon = daemonUnder(pidOf(child));
    if (daemon !== null) peakMb = Math.max(peakMb, treeRssMb(daemon));
  };
  const sampler = setInterval(sample, 50);
  try {
    const firstAnswerMs = await firstAnswer(port, 'q-s0.web.default.cf.bosh', since, sample);
    await settle();
    sample();
    const daemon = required(daemonUnder(pidOf(child)), 'the daemon under npm start');
    return { daemonMb: treeRssMb(daemon), peakMb, firstAnswerMs, breakdown: await breakdown(daemon, adminPort) };
  } finally {
    clearInterval(sampler);
    await stop(child, true);
  }
}

const verdict = (mbValue: number, target: number) => (mbValue <= target ? 'met' : 'MISSED');

function breakdownRow(config: string, b: Breakdown): string {
  const thread = (name: string) => b.threads.filter((t) => t.thread === name || t.thread.startsWith(`${name}-`));
  const cell = (name: string) => {
    const list = thread(name);
    if (list.length === 0) return '–';
    const sum = (k: 'usedMb' | 'totalMb' | 'externalMb') => Math.round(list.reduce((n, t) => n + t[k], 0) * 10) / 10;
    return `${sum('usedMb')} / ${sum('totalMb')} / ${sum('externalMb')}`;
  };
  return `| ${config} | ${b.rssMb} | ${cell('main')} | ${cell('topology')} | ${cell('dns')} | ${cell('pglite')} | ${b.restMb} |`;
}

export async function runMemoryBench(): Promise<Array<[string, string]>> {
  const work = join(tmpdir(), `presence-dns-memory-${process.pid}`);
  mkdirSync(work, { recursive: true });
  try {
    const small = await dnsOnly(work, SMALL, { starts: STARTS });
    const medium = await dnsOnly(work, MEDIUM, { load: true });
    const large = await dnsOnly(work, LARGE, { replacements: REPLACEMENTS });
    const first = await npmStart(work);
    const restart = await npmStart(work);
    const mediumUnderLoad = required(medium.underLoad, 'the medium daemon\'s breakdown under load');
    const largeReplaced = required(large.afterReplacements, 'the large daemon\'s breakdown after the replacements');
    const rows: Array<[string, number, number]> = [
      [`RSS, DNS-only daemon, ${SMALL} records, after 200 queries`, small.afterQueries.rssMb, 50],
      [`RSS, DNS-only daemon, ${MEDIUM} names, after ${LOAD_SECONDS} s of dnsperf`, mediumUnderLoad.rssMb, 64],
      [`RSS, DNS-only daemon, ${LARGE} records, after ${REPLACEMENTS} replacements of the file`, largeReplaced.rssMb, 120],
      ['RSS, npm start, the daemon (npm\'s own process not counted), steady after a restart', restart.daemonMb, 150],
      ['RSS, npm start, the daemon, peak of its first start (initdb)', first.peakMb, 250],
    ];
    const table = [
      '',
      'Where the memory goes (MB; each thread\'s V8 heap: in use / reserved / held outside it; rest = RSS less all of those: code, runtime, shared buffers; PGlite\'s WebAssembly memory counts as external when allocated, not all of it resident, so rest can come out below 0 beside it)',
      '| configuration | RSS | main | topology worker | DNS workers | PGlite | rest |',
      '|---|---:|---:|---:|---:|---:|---:|',
      breakdownRow(`DNS-only, ${SMALL} records, 200 queries`, small.afterQueries),
      breakdownRow(`DNS-only, ${MEDIUM} names, under dnsperf`, mediumUnderLoad),
      breakdownRow(`DNS-only, ${LARGE} records, after ${REPLACEMENTS} replacements`, largeReplaced),
      breakdownRow('npm start, first start (after initdb)', first.breakdown),
      breakdownRow('npm start, restart', restart.breakdown),
    ].join('\n');
    return [
      ...rows.map(([what, value, target]): [string, string] => [`${what} (target ≤ ${target} MB)`, `${value} MB (${verdict(value, target)})`]),
      [`start to first answer, DNS-only, ${SMALL} records, ${STARTS} starts (target ≤ 500 ms)`, spread(small.firstAnswerMs)],
      [`start to first answer, DNS-only, ${LARGE} records`, spread(large.firstAnswerMs)],
      ['spawn to first answer for an example instance name, first npm start (initdb) (target ≤ 2 s)', `${Math.round(first.firstAnswerMs)} ms (${first.firstAnswerMs <= 2000 ? 'met' : 'MISSED'})`],
      ['footprint breakdown', table],
    ];
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === import.meta.filename) {
  for (const [what, value] of await runMemoryBench()) process.stdout.write(`${what}: ${value}\n`);
}
