// A syncing node's own files — snapshot, journal and cached image — copied beside a
// DNS-only sidecar and damaged there, as a bad disk or a bad copy would. Nothing the
// sidecar reads may take an answer away: a cached image with flipped bytes is never
// served (the snapshot and journal are read instead), a journal line that is complete but
// wrong stops the applying there and keeps what came before, and a topology worker that
// dies (ended from outside, as a bug would end it) is restarted without rolling answers
// back. Each fault is visible in /ready, /v1/status, `presence-dns status` and /metrics.
import { execFile } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dig } from '../../helpers/dig.ts';
import { DAEMON_ENTRY, startDaemon, tempDir, waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import { testDatabase, type TestDatabase } from '../../helpers/postgres.ts';
import { exitWorker, INSPECT_ARGS } from '../../helpers/inspector.ts';
import { syncedTopology, topologyJson } from '../../helpers/topology.ts';
import { answers, instancesFile, metric, presenceConfig, type TestInstance } from '../../presence/daemons.ts';
import { writeAtomically } from '../topology-stream.ts';
import { daemonRss, expectNothingLost, reportSeen, sleep, Watch } from './report.ts';
import { readyTopology, statusTopology } from './topology-status.ts';

const run = promisify(execFile);
const FIRST: TestInstance[] = [{ id: 'sf-1', group: 'sf1', ip: '10.61.0.1' }, { id: 'sf-2', group: 'sf2', ip: '10.61.0.2' }];
const THIRD: TestInstance = { id: 'sf-3', group: 'sf3', ip: '10.61.0.3' };
const ALL = [...FIRST, THIRD];
const FILES = ['topology.json', 'topology.json.journal', 'topology.json.image'];

let database: TestDatabase;
/** The writer's files: a snapshot of FIRST with its cached image, and a journal whose one line adds THIRD. */
let synced: Record<string, Buffer>;
const sidecars: RunningDaemon[] = [];
/** What the setup started, stopped in reverse: only what it got to start if it failed halfway. */
const cleanups: Array<() => Promise<unknown>> = [];

/**
 * A real syncing node writes the files: it is killed and started again over its own
 * directory, so that its snapshot (and the image cached with it) holds FIRST, and THIRD,
 * registered after, is a journal line.
 */
async function writeSyncedFiles(): Promise<Record<string, Buffer>> {
  const config = presenceConfig(database.url, 'sf-writer', 15);
  let writer = await startDaemon({ config, files: { 'instances.d/base.json': instancesFile(FIRST) } });
  const file = join(writer.dir, 'topology.json');
  await waitFor(() => syncedTopology(file).instances.length === FIRST.length, 20_000, 'the writer to sync the first instances');
  await writer.stop('SIGKILL');
  writer = await startDaemon({ dir: writer.dir, config });
  await waitFor(() => (JSON.parse(readFileSync(file, 'utf8')) as { record_infos: unknown[] }).record_infos.length === FIRST.length, 20_000, 'a snapshot of the first instances');
  writeFileSync(join(writer.dir, 'instances.d/third.json'), instancesFile([THIRD]));
  await waitFor(() => syncedTopology(file).instances.length === ALL.length, 20_000, 'the third instance in the journal');
  await writer.stop('SIGKILL');
  const files = Object.fromEntries(FILES.map((f) => [f, readFileSync(join(writer.dir, f))]));
  // What the scenarios rely on: the snapshot holds the first two, the journal adds the third.
  expect((JSON.parse(files['topology.json'].toString()) as { record_infos: unknown[] }).record_infos).toHaveLength(FIRST.length);
  expect(files['topology.json.journal'].toString().trim().split('\n')).toHaveLength(2);
  return files;
}

/** A DNS-only sidecar over copies of the writer's files, `damage` done to the copies first. */
async function sidecar(damage: (files: Record<string, Buffer>) => void = () => undefined, config: Record<string, unknown> = {}, nodeArgs: string[] = []): Promise<RunningDaemon> {
  const dir = tempDir();
  const files = Object.fromEntries(Object.entries(synced).map(([k, v]) => [k, Buffer.from(v)]));
  damage(files);
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), bytes);
  mkdirSync(join(dir, 'aliases.d'));
  const daemon = await startDaemon({ dir, config: { log: { level: 'info' }, ...config }, nodeArgs });
  sidecars.push(daemon);
  return daemon;
}

/** The steady load and the records check on every instance's name. */
function watchAll(daemon: RunningDaemon): Watch {
  return new Watch({ daemons: [daemon], expected: new Map(ALL.map((i) => [`q-s4.${i.group}.default.cf.bosh`, [i.ip]])) });
}

/** Every instance's name answered with its address, and its address's PTR with a name. */
async function answersEvery(daemon: RunningDaemon, instances: TestInstance[]): Promise<string[]> {
  const wrong: string[] = [];
  for (const i of instances) {
    const got = await answers(daemon, i.group);
    if (got.join() !== i.ip) wrong.push(`${i.group}: ${got.join()}`);
    const ptr = await dig(daemon.dnsPort, `${i.ip.split('.').reverse().join('.')}.in-addr.arpa`, 'PTR');
    if (ptr.status !== 'NOERROR' || !ptr.answer.some((a) => a.data.startsWith(`${i.id}.${i.group}.`))) wrong.push(`PTR ${i.ip}: ${ptr.status} ${ptr.answer.map((a) => a.data).join()}`);
  }
  return wrong;
}

async function cliStatus(daemon: RunningDaemon): Promise<string> {
  const { stdout } = await run(process.execPath, [DAEMON_ENTRY, 'status', '--admin', `http://127.0.0.1:${daemon.adminPort}`], { timeout: 15_000 });
  return stdout;
}

beforeAll(async () => {
  database = await testDatabase();
  cleanups.push(() => database.drop());
  synced = await writeSyncedFiles();
}, 120_000);

afterAll(async () => {
  await Promise.all(sidecars.map((d) => d.stop('SIGKILL')));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("a syncing node's files, damaged, served by a sidecar", () => {
  it('a cached image with every 7th byte flipped from a quarter in: never served; every name answered from the snapshot and journal; the rejection shown', async () => {
    const daemon = await sidecar((files) => {
      const image = files['topology.json.image'];
      for (let k = image.length >> 2; k < image.length; k += 7) image[k] ^= 0xff;
    });
    const watch = watchAll(daemon);
    expect(await answersEvery(daemon, ALL)).toEqual([]);
    const seen = await watch.stop();
    reportSeen('a synced node\'s cached image with flipped bytes', seen, daemonRss(daemon));
    expectNothingLost(seen);
    const ready = await readyTopology(daemon);
    expect(ready.status).toBe(200);
    expect(ready.detail.cacheError).toMatch(/topology\.json\.image rejected: its checksum does not match its bytes/);
    expect((await statusTopology(daemon)).cacheError).toBe(ready.detail.cacheError);
    expect(await cliStatus(daemon)).toMatch(/cached image .* rejected/);
    expect(await metric(daemon, 'presence_dns_topology_image_cache_rejects_total')).toBe(1);
    expect(daemon.logs.some((l) => l.includes('"level":50') && l.includes('failed verification') && l.includes('topology.json.image'))).toBe(true);
  });

  it('journal lines that parse as JSON but are not changes: the worker lives, the third instance stays answered, the error shown', async () => {
    const daemon = await sidecar();
    expect(await answersEvery(daemon, ALL)).toEqual([]);
    const journal = join(daemon.dir, 'topology.json.journal');
    const watch = watchAll(daemon);
    const row = ['sf-9', null, 'sf9', [], null, null, 'default', null, 'cf', '10.61.0.9', 'bosh', null, null, null, null, {}];
    const bad = ['null', '[]', '"change"', '42', '{"n":2,"v":"x","rm":{},"add":7}', JSON.stringify({ n: 2, v: 99, rm: [], add: [null] }), JSON.stringify({ n: 2, v: 99, rm: [], add: [row] })];
    for (const line of bad) {
      appendFileSync(journal, `${line}\n`);
      await sleep(300);
    }
    await waitFor(async () => (await readyTopology(daemon)).detail.journalError !== null, 10_000, 'the journal error to show');
    const seen = await watch.stop();
    reportSeen('non-change lines appended to a followed journal', seen, daemonRss(daemon));
    expectNothingLost(seen);
    expect(await answersEvery(daemon, ALL)).toEqual([]);
    const ready = await readyTopology(daemon);
    expect(ready.detail).toMatchObject({ workerUp: true, workerRestarts: 0 });
    expect(ready.detail.journalError).toMatch(/journal line 2 \(byte \d+\) is corrupt: it has no checksum; the changes before it stay in service/);
    expect((await statusTopology(daemon)).journalError).toBe(ready.detail.journalError);
    expect(await cliStatus(daemon)).toMatch(/journal line 2 .* is corrupt/);
    expect(await metric(daemon, 'presence_dns_topology_journal_errors_total')).toBe(1);
    expect(await metric(daemon, 'presence_dns_topology_worker_restarts_total')).toBe(0);
  });

  it('a topology worker that dies is restarted from the answers in service, never from an older topology it would read again', async () => {
    // A worker thread of its own, whatever the file's size.
    const daemon = await sidecar(() => undefined, { topology: { inline_max_bytes: 0 } }, INSPECT_ARGS);
    expect(await answersEvery(daemon, ALL)).toEqual([]);
    // The journal that added the third instance goes away: read again, the files now say two.
    rmSync(join(daemon.dir, 'topology.json.journal'));
    await sleep(500);
    const watch = watchAll(daemon);
    await exitWorker(daemon, 'control/worker.js');
    await waitFor(async () => (await readyTopology(daemon)).detail.workerRestarts === 1 && (await readyTopology(daemon)).detail.workerUp, 30_000, 'the worker restarted');
    const seen = await watch.stop();
    reportSeen('topology worker killed, restarted', seen, daemonRss(daemon));
    expectNothingLost(seen);
    expect(await answersEvery(daemon, ALL)).toEqual([]);
    expect(await metric(daemon, 'presence_dns_topology_worker_restarts_total')).toBe(1);
    expect((await statusTopology(daemon)).workerRestarts).toBe(1);
    expect(await cliStatus(daemon)).toMatch(/topology worker +running; restarted 1 time/);
    expect(daemon.logs.some((l) => l.includes('"level":50') && l.includes('the topology worker exited'))).toBe(true);
    // The restarted worker follows the files: a new snapshot is read.
    writeAtomically(daemon.dir, 'topology.json', topologyJson([{ id: 'sf-new', group: 'sfnew', ip: '10.61.0.8' }], {}, 1000));
    await waitFor(async () => (await answers(daemon, 'sfnew'))[0] === '10.61.0.8', 15_000, 'the new snapshot');
  });
});
