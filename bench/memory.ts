// The footprint figures of DESIGN §9 (part of `npm run bench`; alone: `npm run build &&
// node --import tsx bench/memory.ts`): RSS of the compiled daemon, DNS-only, on a small
// file and on 200 k records (after a short dnsperf load, so the answer cache is warm);
// RSS of `npm start` with all its processes (npm, sh, the daemon with the embedded
// PGlite), on its first start (initdb) and on a restart; and the time from spawning a
// DNS-only daemon to its first answer. Every process it starts is stopped.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildQuery } from '../test/dns/client.ts';
import { DAEMON_ENTRY } from '../test/helpers/daemon.ts';
import { dnsperf, freePort } from './dnsperf.ts';
import { generate, writeQueries, writeTopology } from './topology.ts';

const ROOT = join(import.meta.dirname, '..');
const SMALL = 100;
const LARGE = Number(process.env.BENCH_MEMORY_LARGE ?? 200_000);
const LOAD_SECONDS = 3;
const SETTLE_MS = 2000;
const ANSWER_TIMEOUT_MS = 60_000;
/** Starts of the small DNS-only daemon timed (the machine is shared: the median and the range). */
const STARTS = 7;

/** RSS of a process and all its descendants, MB. */
export function treeRssMb(pid: number): number {
  const kb = (p: number) => {
    try {
      return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      return 0; // exited meanwhile
    }
  };
  const children = (p: number): number[] => {
    try {
      return readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  const walk = (p: number): number => kb(p) + children(p).reduce((n, c) => n + walk(c), 0);
  return Math.round(walk(pid) / 1024);
}

/** Resolves once `name` gets an answer over UDP on `port`, polling every 2 ms; ms since `since`. */
async function firstAnswer(port: number, name: string, since: number): Promise<number> {
  const socket = createSocket('udp4');
  const query = buildQuery(name);
  try {
    return await new Promise<number>((resolve, reject) => {
      const poll = setInterval(() => socket.send(query, port, '127.0.0.1'), 2);
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
  if (group) process.kill(-child.pid!, 'SIGTERM');
  else child.kill('SIGTERM');
  const force = setTimeout(() => (group ? process.kill(-child.pid!, 'SIGKILL') : child.kill('SIGKILL')), 10_000);
  await exited;
  clearTimeout(force);
}

/** "median ms (min–max)" of some durations. */
function spread(ms: number[]): string {
  const sorted = [...ms].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  return sorted.length === 1 ? `${Math.round(median)} ms` : `${Math.round(median)} ms (${Math.round(sorted[0])}–${Math.round(sorted.at(-1)!)})`;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

/** A DNS-only daemon on `records` generated records: ms from spawn to its first answer (every start), and RSS after a short load. */
async function dnsOnly(work: string, records: number, starts = 1): Promise<{ firstAnswerMs: number[]; rssMb: number }> {
  const dir = join(work, `dns-${records}`);
  mkdirSync(dir, { recursive: true });
  const topology = generate(records);
  writeTopology(join(dir, 'topology.json'), topology, 1);
  writeQueries(join(dir, 'queries.txt'), topology);
  const port = await freePort();
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    dns: { listen: [{ address: '127.0.0.1', port }] }, admin: { address: '127.0.0.1', port: 0 },
    topology: { file: join(dir, 'topology.json') }, forward: { enabled: false },
    sync: { enabled: false }, registrar: { enabled: false }, reaper: { enabled: false }, log: { level: 'warn' },
  }));
  const spawnDaemon = () => spawn(process.execPath, [DAEMON_ENTRY, 'start', '--config', join(dir, 'config.json')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const firstAnswerMs: number[] = [];
  for (let i = 1; i < starts; i++) {
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
    await dnsperf({ port, queries: join(dir, 'queries.txt'), seconds: LOAD_SECONDS, scratch: join(dir, 'perf.out') });
    await settle();
    return { firstAnswerMs, rssMb: treeRssMb(child.pid!) };
  } finally {
    await stop(child);
  }
}

/** `npm start` as a user runs it (embedded PGlite, the example instances), moved to free ports and a scratch data dir. */
async function npmStart(work: string): Promise<number> {
  const port = await freePort();
  const child = spawn('npm', ['start', '--silent', '--',
    '--set', `dns.listen=[{"address":"127.0.0.1","port":${port}}]`, '--set', 'admin.port=0', '--set', 'forward.enabled=false',
    '--set', `database.embedded_dir=${join(work, 'pglite')}`, '--set', `topology.file=${join(work, 'npm-topology.json')}`,
    '--set', 'log.level=warn',
  ], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], detached: true });
  try {
    await firstAnswer(port, 'q-s0.web.default.cf.bosh', performance.now());
    await settle();
    return treeRssMb(child.pid!);
  } finally {
    await stop(child, true);
  }
}

export async function runMemoryBench(): Promise<Array<[string, string]>> {
  const work = join(tmpdir(), `presence-dns-memory-${process.pid}`);
  mkdirSync(work, { recursive: true });
  try {
    const small = await dnsOnly(work, SMALL, STARTS);
    const large = await dnsOnly(work, LARGE);
    const first = await npmStart(work);
    const restart = await npmStart(work);
    return [
      [`RSS, DNS-only daemon, ${SMALL} records, after ${LOAD_SECONDS} s of dnsperf (target ≤ 50 MB)`, `${small.rssMb} MB`],
      [`RSS, DNS-only daemon, ${LARGE} records, after ${LOAD_SECONDS} s of dnsperf (target ≤ 120 MB)`, `${large.rssMb} MB`],
      ['RSS, npm start, all processes (npm, sh, daemon with PGlite), first start (initdb) (target ≤ 150 MB)', `${first} MB`],
      ['RSS, npm start, all processes, restart over its data (target ≤ 150 MB)', `${restart} MB`],
      [`start to first answer, DNS-only, ${SMALL} records, ${STARTS} starts (target ≤ 500 ms)`, spread(small.firstAnswerMs)],
      [`start to first answer, DNS-only, ${LARGE} records`, spread(large.firstAnswerMs)],
    ];
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === import.meta.filename) {
  for (const [what, value] of await runMemoryBench()) process.stdout.write(`${what}: ${value}\n`);
}
