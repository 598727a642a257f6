// Files over `topology.max_file_bytes` (here 64 KiB): a DNS-only sidecar following a
// snapshot and its journal gets a snapshot over the limit, then a journal over it. Each is
// rejected whole before it is read — nothing of it is served, the last good topology
// (with the journal's changes already applied) stays, and the error names the file, its
// size and the limit — and a file under the limit afterwards is served again. Under a
// steady UDP load, every query is answered from a version in service.
import { appendFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { journalHeaderLine, journalLine } from '../../../src/control/journal.ts';
import type { Instance } from '../../../src/image/instance.ts';
import { instanceName } from '../../../src/image/view.ts';
import { snapshotChunks } from '../../../src/control/snapshot.ts';
import { startDaemon, type RunningDaemon } from '../../helpers/daemon.ts';
import { instance } from './mutations.ts';
import { AnswersByVersion, daemonRss, expectNothingLost, reportSeen, Versions, Watch } from './report.ts';
import { askAll, countersWhen, readyTopology, topologyCounters, wrongAnswers } from './topology-status.ts';

const LIMIT = 64 * 1024;
const CLUSTER = '51ee0000-0000-4000-8000-0000000051ee';

/** `count` instances of version `version`: the address says which version wrote it. */
const fleet = (version: number, count: number) => Array.from({ length: count }, (_, k) => instance(`os${k}`, `o${k % 3}`, `10.${60 + version}.${k >> 8}.${(k & 255) + 1}`));
const snapshot = (version: number, instances: Instance[]) => [...snapshotChunks({ version, cluster: CLUSTER }, instances)].join('');

/** Every instance name any version has, and the groups: what each version answers for them ([]: no such name). */
const NAMES = [...fleet(0, 700).map((i) => instanceName(i)), ...[0, 1, 2].map((g) => `q-s4.o${g}.default.cf.bosh`)];
function answersOf(live: Instance[]): Map<string, string[]> {
  const byName = new Map(live.map((i) => [instanceName(i), i.ip]));
  return new Map(NAMES.map((name) => {
    const group = /^q-s4\.(o\d)\./.exec(name)?.[1];
    const ip = byName.get(name);
    return [name, group ? live.filter((i) => i.group === group).map((i) => i.ip).sort() : ip === undefined ? [] : [ip]];
  }));
}

let daemon: RunningDaemon;
const states = new AnswersByVersion();
const versions = new Versions(1);

function replace(name: string, text: string): void {
  const tmp = join(daemon.dir, `.${name}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(daemon.dir, name));
}

beforeAll(async () => {
  states.set(1, answersOf(fleet(1, 40)));
  daemon = await startDaemon({
    files: { 'topology.json': snapshot(1, fleet(1, 40)), 'topology.json.journal': journalHeaderLine(1, CLUSTER) },
    config: { topology: { max_file_bytes: LIMIT }, log: { level: 'info' } },
  });
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

it('a snapshot, then a journal, over topology.max_file_bytes: each rejected whole naming the limit, the last good answers kept, every query answered', async () => {
  const watch = new Watch({
    daemons: [daemon],
    expected: { names: () => NAMES.filter((_, k) => k % 7 === 0 || k >= 700), allowed: (name, sentAt, answeredAt) => versions.between(sentAt, answeredAt).map((v) => states.answer(v, name)) },
  });
  const expectServing = async (version: number) => {
    const counters = await topologyCounters(daemon);
    expect(counters.revision).toBe(version);
    expect(wrongAnswers(await askAll(daemon, NAMES), states.of(version))).toEqual([]);
  };

  // A snapshot of 700 instances, over the limit: nothing of it is read.
  const big = snapshot(2, fleet(2, 700));
  expect(big.length).toBeGreaterThan(LIMIT);
  let before = await topologyCounters(daemon);
  replace('topology.json', big);
  await countersWhen(daemon, (c) => c.reloadFailures > before.reloadFailures, 'the big snapshot to be rejected');
  let ready = await readyTopology(daemon);
  expect(ready.status).toBe(200);
  expect(ready.detail.lastError).toMatch(new RegExp(`^topology file \\S+/topology\\.json is ${big.length} bytes, over topology\\.max_file_bytes \\(${LIMIT}\\)`));
  await expectServing(1);

  // The journal beside the last good snapshot goes on, and a change in it is applied: the
  // big snapshot's rejection did not stop the one in service from being followed.
  const moved = fleet(3, 40);
  versions.wrote(3);
  states.set(3, answersOf(moved));
  const change = journalLine(1, { version: 3, removes: moved.map((i) => instanceName(i)), adds: moved });
  // The big snapshot is still on disk: the good one is put back first, so the journal is its journal again.
  replace('topology.json', snapshot(1, fleet(1, 40)));
  await countersWhen(daemon, (c) => c.reloads > before.reloads, 'the good snapshot to be read again');
  appendFileSync(join(daemon.dir, 'topology.json.journal'), change);
  await countersWhen(daemon, (c) => c.revision === 3, 'the journal line to be applied');
  versions.served(3);
  await expectServing(3);

  // A new journal beside the same snapshot that repeats that change and adds 500 more, over the limit: none of it is read.
  const lines = Array.from({ length: 500 }, (_, k) => journalLine(k + 2, { version: 4 + k, removes: [], adds: [instance(`os${k}`, `o${k % 3}`, `10.99.${k >> 8}.${(k & 255) + 1}`)] }));
  const journal = journalHeaderLine(1, CLUSTER) + change + lines.join('');
  expect(journal.length).toBeGreaterThan(LIMIT);
  before = await topologyCounters(daemon);
  replace('topology.json.journal', journal);
  await countersWhen(daemon, (c) => c.journalErrors > before.journalErrors, 'the big journal to be rejected');
  ready = await readyTopology(daemon);
  expect(ready.status).toBe(200);
  expect(ready.detail.journalError).toMatch(new RegExp(`^topology journal \\S+/topology\\.json\\.journal is ${statSync(join(daemon.dir, 'topology.json.journal')).size} bytes, over topology\\.max_file_bytes \\(${LIMIT}\\)`));
  await expectServing(3);

  // Files under the limit are read again: a new snapshot and its journal.
  versions.wrote(10);
  states.set(10, answersOf(fleet(10, 60)));
  before = await topologyCounters(daemon);
  replace('topology.json.journal', journalHeaderLine(10, CLUSTER));
  replace('topology.json', snapshot(10, fleet(10, 60)));
  await countersWhen(daemon, (c) => c.revision === 10, 'the new snapshot under the limit');
  versions.served(10);
  await expectServing(10);
  ready = await readyTopology(daemon);
  expect(ready.detail).toMatchObject({ lastError: null, journalError: null, workerUp: true, workerRestarts: 0 });

  const seen = await watch.stop();
  reportSeen('a snapshot and a journal over topology.max_file_bytes', seen, daemonRss(daemon), `limit ${LIMIT / 1024} KiB: snapshot of ${(big.length / 1024).toFixed(0)} KiB and journal of ${(journal.length / 1024).toFixed(0)} KiB rejected whole`);
  expectNothingLost(seen);
  expect(daemon.process.exitCode).toBeNull();
});
