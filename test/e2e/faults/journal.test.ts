// Mutated journals (500 rounds; 10,000 with FAULTS_LONG=1), seeded so a failure replays.
// A DNS-only sidecar follows a snapshot and its journal, written in the product's own
// format (writer.ts snapshotChunks, journal.ts journalHeaderLine/journalLine). Each round
// a writer's next changes reach the journal with one line damaged as a disk or a copy
// damages it — bytes flipped, a line cut short with the next one written after it, a line
// repeated, two swapped, one lost, a line of the wrong shape or types — or all of them
// good, or the last one torn (not finished yet). They arrive appended to the journal being
// followed, in a new journal beside the same snapshot (repeating the changes since the
// snapshot), or with a new snapshot, as a writer's compaction writes them; after a damaged
// journal, only a new journal or a new snapshot brings the sidecar back to following.
//
// The test's oracle is its own: it knows by construction which line is the first bad one
// (it made it so) and what the changes before it leave live. Under a steady UDP load that
// checks every answer against the states that may be in service, it asserts after each
// round that the sidecar answers exactly the state before the first bad line (everything
// applied before it stays, nothing after it is applied), that each bad line is counted in
// presence_dns_topology_journal_errors_total and named in /ready and /v1/status, that a
// torn last line is not counted, and that the daemon and its topology worker never die.
import { appendFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { journalHeaderLine, journalLine, type JournalEntry } from '../../../src/control/journal.ts';
import { RECORD_KEYS, type Instance } from '../../../src/image/instance.ts';
import { recordRow, snapshotChunks } from '../../../src/control/snapshot.ts';
import { startDaemon, type RunningDaemon } from '../../helpers/daemon.ts';
import { required } from '../../helpers/required.ts';
import { instance, prng, sealed, type Random } from './mutations.ts';
import { AnswersByVersion, daemonRss, expectNothingLost, reportSeen, size, Versions, Watch } from './report.ts';
import { askAll, countersWhen, readyTopology, statusTopology, topologyCounters, wrongAnswers } from './topology-status.ts';

const ROUNDS = size(500, 10_000);
const SEED = 0x10c4a1;
const CLUSTER = '7d1f0c2e-0000-4000-8000-00000000j0a1';
/** Instances j0…j23 may exist; jk is in group g(k mod 4). */
const UNIVERSE = 24;
const GROUPS = 4;

const nameOf = (k: number) => `j${k}.g${k % GROUPS}.default.cf.bosh`;
const groupName = (g: number) => `q-s4.g${g}.default.cf.bosh`;
const NAMES = [...Array.from({ length: UNIVERSE }, (_, k) => nameOf(k)), ...Array.from({ length: GROUPS }, (_, g) => groupName(g))];

const instanceOf = (k: number, ip: string): Instance => instance(`j${k}`, `g${k % GROUPS}`, ip);

/** The model: which instances are live, with their addresses (instance number → ip). */
type Live = Map<number, string>;

/** What DNS must answer for every name when `live` is in service ([]: no such name). */
function answersOf(live: Live): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let k = 0; k < UNIVERSE; k++) {
    const ip = live.get(k);
    out.set(nameOf(k), ip === undefined ? [] : [ip]);
  }
  for (let g = 0; g < GROUPS; g++) out.set(groupName(g), [...live].filter(([k]) => k % GROUPS === g).map(([, ip]) => ip).sort());
  return out;
}

/** A writer's next change to `live` (which it updates): 1–3 instances added, removed or moved to another address. */
function change(live: Live, version: number, random: Random): JournalEntry {
  const removes: string[] = [];
  const adds: Instance[] = [];
  const touched = new Set<number>();
  for (let ops = random.between(1, 3); ops > 0; ops--) {
    const k = random.int(UNIVERSE);
    if (touched.has(k)) continue;
    touched.add(k);
    const ip = `10.77.${k}.${random.between(1, 254)}`;
    if (live.has(k) && live.size > 4 && random.chance(0.4)) {
      removes.push(nameOf(k));
      live.delete(k);
    } else {
      // A replaced instance is named in the removals too, as the syncer writes it.
      if (live.has(k)) removes.push(nameOf(k));
      adds.push(instanceOf(k, ip));
      live.set(k, ip);
    }
  }
  return { version, removes, adds };
}

const column = (name: (typeof RECORD_KEYS)[number]) => RECORD_KEYS.indexOf(name);

/** A good row with one column set to `value`. */
function rowWith(name: (typeof RECORD_KEYS)[number], value: unknown): unknown[] {
  const row = recordRow(instanceOf(0, '10.77.0.1'));
  row[column(name)] = value;
  return row;
}

/** A line for line `n` changing to `v` that fails only by its shape or types (its checksum holds), or is no sealed line at all. */
function wrongLine(n: number, v: number, before: number, random: Random): string {
  const good = { n, v, rm: [] as unknown, add: [recordRow(instanceOf(1, '10.77.1.1'))] as unknown };
  const shapes: Array<() => Record<string, unknown>> = [
    () => ({ ...good, v: String(v) }),
    () => ({ ...good, v: v + 0.5 }),
    () => ({ ...good, v: -1 }),
    () => ({ ...good, v: before - 1 }),
    () => ({ ...good, v: null }),
    () => ({ ...good, v: 1e300 }),
    () => ({ ...good, n: String(n) }),
    () => ({ ...good, rm: {} }),
    () => ({ ...good, rm: [7] }),
    () => ({ ...good, rm: [''] }),
    () => ({ ...good, rm: ['x'.repeat(254)] }),
    () => ({ ...good, rm: 'j1.g1.default.cf.bosh' }),
    () => ({ ...good, add: {} }),
    () => ({ ...good, add: 7 }),
    () => ({ ...good, add: null }),
    () => ({ ...good, add: [null] }),
    () => ({ ...good, add: [[]] }),
    () => ({ ...good, add: [42] }),
    () => ({ ...good, add: [rowWith('id', 'j0').slice(1)] }),
    () => ({ ...good, add: [[...rowWith('id', 'j0'), 'x']] }),
    () => ({ ...good, add: [rowWith('ip', 7)] }),
    () => ({ ...good, add: [rowWith('ip', 'not-an-ip')] }),
    () => ({ ...good, add: [rowWith('ip', '999.1.1.1')] }),
    () => ({ ...good, add: [rowWith('ip', null)] }),
    () => ({ ...good, add: [rowWith('id', null)] }),
    () => ({ ...good, add: [rowWith('id', 42)] }),
    () => ({ ...good, add: [rowWith('id', 'a.b')] }),
    () => ({ ...good, add: [rowWith('id', '')] }),
    () => ({ ...good, add: [rowWith('instance_group', {})] }),
    () => ({ ...good, add: [rowWith('network', [])] }),
    () => ({ ...good, add: [rowWith('deployment', 'x'.repeat(64))] }),
    () => ({ ...good, add: [rowWith('domain', 5)] }),
    () => ({ ...good, add: [rowWith('health', 'sick')] }),
    () => ({ ...good, add: [rowWith('ports', [])] }),
    () => ({ ...good, add: [rowWith('ports', { http: 0 })] }),
    () => ({ ...good, add: [rowWith('ports', { http: 'x' })] }),
    () => ({ ...good, add: [rowWith('group_ids', 'x')] }),
    () => ({ ...good, add: [rowWith('group_ids', [-1])] }),
    () => ({ ...good, add: [rowWith('instance_index', -1)] }),
    () => ({ ...good, add: [rowWith('instance_index', 1.5)] }),
    // One bad row among good ones: the whole line is refused, the good rows with it.
    () => ({ ...good, add: [recordRow(instanceOf(2, '10.77.2.2')), rowWith('ip', 'x')] }),
    () => ({ ...good, x: 1 }),
    () => ({ n, v, rm: [] }),
  ];
  const unsealed = ['null', '[]', '42', '"v"', '{}', 'true', '', '\u{1F4A9}', JSON.stringify(good), `${JSON.stringify(good).slice(0, -1)},"crc":"00000000"}`];
  return random.chance(0.75) ? sealed(random.pick(shapes)()) : `${random.pick(unsealed)}\n`;
}

/** `line` with 1–3 of its bytes (not its newline) flipped, none of them into a newline: one whole line that is wrong. */
function flipped(line: string, random: Random): string {
  for (;;) {
    const bytes = Buffer.from(line);
    for (let k = random.between(1, 3); k > 0; k--) bytes[random.int(bytes.length - 1)] ^= random.between(1, 255);
    if (bytes.indexOf(0x0a) === bytes.length - 1) return bytes.toString('latin1');
  }
}

type Kind = 'good' | 'flip' | 'cut' | 'repeat' | 'swap' | 'drop' | 'shape' | 'torn';

/** A round's lines as written: the bytes, where the first bad complete line is (1-based, in these lines), how many changes go into service. */
interface Batch {
  kind: Kind;
  text: string;
  /** The first complete line that fails, counted in this batch (null: none). */
  firstBad: number | null;
  /** The changes applied: those before the first bad line (and before a torn last line). */
  applied: number;
  /** The rest of a torn last line, which a later write may complete. */
  tornRest: string | null;
}

/** The batch of `entries` (numbered from `first`) with one mutation of `kind`. */
function mutate(kind: Kind, entries: JournalEntry[], first: number, before: number, random: Random): Batch {
  const lines = entries.map((e, k) => journalLine(first + k, e));
  const m = lines.length;
  const at = (k: number) => random.between(1, k); // a 1-based position
  switch (kind) {
    case 'good':
      return { kind, text: lines.join(''), firstBad: null, applied: m, tornRest: null };
    case 'flip': {
      const k = at(m);
      lines[k - 1] = flipped(lines[k - 1], random);
      return { kind, text: lines.join(''), firstBad: k, applied: k - 1, tornRest: null };
    }
    case 'cut': {
      // Line k stops short (its end and newline missing) and line k + 1 is written after it: one bad line.
      const k = at(m - 1);
      lines[k - 1] = lines[k - 1].slice(0, random.between(1, lines[k - 1].length - 2));
      return { kind, text: lines.join(''), firstBad: k, applied: k - 1, tornRest: null };
    }
    case 'repeat': {
      const k = at(m);
      lines.splice(k, 0, lines[k - 1]);
      return { kind, text: lines.join(''), firstBad: k + 1, applied: k, tornRest: null };
    }
    case 'swap': {
      const k = at(m - 1);
      [lines[k - 1], lines[k]] = [lines[k], lines[k - 1]];
      return { kind, text: lines.join(''), firstBad: k, applied: k - 1, tornRest: null };
    }
    case 'drop': {
      const k = at(m - 1);
      lines.splice(k - 1, 1);
      return { kind, text: lines.join(''), firstBad: k, applied: k - 1, tornRest: null };
    }
    case 'shape': {
      const k = at(m);
      lines[k - 1] = wrongLine(first + k - 1, entries[k - 1].version, k === 1 ? before : entries[k - 2].version, random);
      return { kind, text: lines.join(''), firstBad: k, applied: k - 1, tornRest: null };
    }
    case 'torn': {
      const last = lines[m - 1];
      const cut = random.between(1, last.length - 1);
      lines[m - 1] = last.slice(0, cut);
      return { kind, text: lines.join(''), firstBad: null, applied: m - 1, tornRest: last.slice(cut) };
    }
  }
}

/** Which mutations a batch of `m` lines can have (a swap, cut or drop needs a line after it; a torn line a good one before it, so its read shows). */
function kindsFor(m: number): Kind[] {
  const kinds: Kind[] = ['good', 'flip', 'repeat', 'shape'];
  if (m >= 2) kinds.push('cut', 'swap', 'drop', 'torn');
  return kinds;
}

type How = 'appended' | 'new journal' | 'new snapshot';

let daemon: RunningDaemon;
const random = prng(SEED);
/** The model of what the sidecar must serve once a round is in service: instances and version. */
const live: Live = new Map();
let current = 1000;
let nextVersion = current + 1;
/** Answers by version, for every version that goes into service. */
const states = new AnswersByVersion();
const versions = new Versions(current);
/** The files on disk: the snapshot's version, the journal's complete good lines, whether the sidecar still follows it. */
const disk = { snapshot: current, lines: 0, following: true, sinceSnapshot: [] as JournalEntry[] };
let errors = 0;

const snapshotText = (version: number) => [...snapshotChunks({ version, cluster: CLUSTER }, [...live].map(([k, ip]) => instanceOf(k, ip)))].join('');
const journalFile = () => join(daemon.dir, 'topology.json.journal');

/** Writes as a writer does: a temp file in the same directory, renamed over (a new inode). */
function replace(name: string, text: string): void {
  const tmp = join(daemon.dir, `.${name}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(daemon.dir, name));
}

/** `version` goes into service with what is live now: registered before it is written, so an answer from it is never taken for wrong. */
function inService(version: number): void {
  states.set(version, answersOf(live));
  versions.wrote(version);
  current = version;
}

function apply(entry: JournalEntry): void {
  for (const name of entry.removes) live.delete(Number(required(/^j(\d+)\./.exec(name), `an instance number in ${name}`)[1]));
  for (const i of entry.adds) live.set(Number(i.id.slice(1)), i.ip);
  disk.sinceSnapshot.push(entry);
  inService(entry.version);
}

/** Appends `text` in one to three writes split anywhere: a line the sidecar sees half-written is waited on. */
function appendInPieces(text: string): void {
  const cuts = [...Array.from({ length: random.int(3) }, () => random.int(text.length)).sort((a, b) => a - b), text.length];
  let from = 0;
  for (const cut of cuts) {
    if (cut > from) appendFileSync(journalFile(), text.slice(from, cut));
    from = Math.max(from, cut);
  }
}

interface Outcome {
  batch: Batch;
  how: How;
  /** The journal line number the error must name (null: no bad line). */
  badLine: number | null;
}

/** One round: the writer's next changes written with one mutation; returns once the sidecar has read them (its counters say so). */
async function round(n: number): Promise<Outcome> {
  const how: How = disk.following && random.chance(0.5) ? 'appended' : random.chance(0.5) ? 'new journal' : 'new snapshot';
  // A compaction's snapshot holds what is in service, at a version of its own; the journal's changes come after it.
  const snapshot = how === 'new snapshot' ? nextVersion++ : null;
  const model = new Map(live);
  const entries = Array.from({ length: random.between(1, 5) }, () => change(model, nextVersion++, random));
  const replay = how === 'new journal' ? [...disk.sinceSnapshot] : [];
  const first = how === 'appended' ? disk.lines + 1 : replay.length + 1;
  const batch = mutate(random.pick(kindsFor(entries.length)), entries, first, snapshot ?? current, random);

  if (snapshot !== null) {
    disk.sinceSnapshot = [];
    inService(snapshot);
  }
  for (const e of entries.slice(0, batch.applied)) apply(e);
  if (how === 'appended') {
    appendInPieces(batch.text);
  } else {
    // A new journal first, then its snapshot: until the snapshot is replaced the journal is another snapshot's, and waited on.
    const base = snapshot ?? disk.snapshot;
    replace('topology.json.journal', journalHeaderLine(base, CLUSTER) + replay.map((e, k) => journalLine(k + 1, e)).join('') + batch.text);
    if (snapshot !== null) replace('topology.json', snapshotText(snapshot));
    disk.snapshot = base;
    disk.lines = replay.length;
  }
  disk.lines += batch.applied;
  if (batch.firstBad !== null) errors++;
  await countersWhen(daemon, (c) => c.revision >= current && c.journalErrors >= errors, `round ${n} (${batch.kind}, ${how}): version ${current} in service and ${errors} journal errors counted`);
  const { tornRest } = batch;
  let torn = tornRest !== null;
  // A torn last line is completed now and then, as the writer's next write would.
  if (tornRest !== null && random.chance(0.5)) {
    apply(required(entries.at(-1), 'the torn entry'));
    appendFileSync(journalFile(), tornRest);
    disk.lines++;
    torn = false;
    await countersWhen(daemon, (c) => c.revision >= current, `round ${n}: the torn line, completed`);
  }
  disk.following = batch.firstBad === null && !torn;
  return { batch, how, badLine: batch.firstBad === null ? null : first - 1 + batch.firstBad };
}

/** What the sidecar must show after a round, as problems found. */
async function check(n: number, { batch, how, badLine }: Outcome): Promise<string[]> {
  const where = `round ${n} (${batch.kind}, ${how})`;
  const problems: string[] = [];
  const c = await topologyCounters(daemon);
  if (c.revision !== current) problems.push(`${where}: version ${c.revision} in service, ${current} expected`);
  if (c.journalErrors !== errors) problems.push(`${where}: ${c.journalErrors} journal errors counted, ${errors} expected`);
  if (c.records !== live.size) problems.push(`${where}: ${c.records} records in service, ${live.size} expected`);
  if (c.workerRestarts !== 0) problems.push(`${where}: the topology worker restarted`);
  const wrong = wrongAnswers(await askAll(daemon, NAMES), answersOf(live));
  if (wrong.length) problems.push(`${where}: ${wrong.slice(0, 3).join('; ')}`);
  const ready = await readyTopology(daemon);
  if (ready.status !== 200 || !ready.detail.workerUp) problems.push(`${where}: /ready ${ready.status}, worker up ${ready.detail.workerUp}`);
  if (badLine !== null) {
    const named = new RegExp(`^journal line ${badLine} \\(byte \\d+\\) is corrupt: .*; the changes before it stay in service`);
    if (!named.test(ready.detail.journalError ?? '')) problems.push(`${where}: /ready journalError ${JSON.stringify(ready.detail.journalError)} does not name line ${badLine}`);
    const status = await statusTopology(daemon);
    if (status.journalError !== ready.detail.journalError) problems.push(`${where}: /v1/status journalError ${JSON.stringify(status.journalError)} is not /ready's`);
  } else if (ready.detail.journalError !== null) {
    problems.push(`${where}: a journal without a bad line, but /ready shows ${JSON.stringify(ready.detail.journalError)}`);
  }
  return problems;
}

beforeAll(async () => {
  for (let k = 0; k < 16; k++) live.set(k, `10.77.${k}.1`);
  states.set(current, answersOf(live));
  daemon = await startDaemon({
    files: { 'topology.json': snapshotText(current), 'topology.json.journal': journalHeaderLine(current, CLUSTER) },
    config: { log: { level: 'info' } },
  });
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

it(`${ROUNDS} mutated journals followed by a sidecar: the changes before the first bad line stay answered, none after it is applied, each bad line counted`, async () => {
  const pid = daemon.process.pid;
  const watch = new Watch({
    daemons: [daemon],
    expected: { names: () => NAMES, allowed: (name, sentAt, answeredAt) => versions.between(sentAt, answeredAt).map((v) => states.answer(v, name)) },
  });
  const problems: string[] = [];
  const tally = new Map<string, number>();
  for (let n = 0; n < ROUNDS && problems.length === 0; n++) {
    const outcome = await round(n);
    versions.served(current);
    tally.set(outcome.batch.kind, (tally.get(outcome.batch.kind) ?? 0) + 1);
    problems.push(...await check(n, outcome));
  }
  const seen = await watch.stop();
  const kinds = [...tally].map(([kind, count]) => `${kind} ${count}`).join(', ');
  reportSeen(`${ROUNDS.toLocaleString('en')} mutated journals, a sidecar following`, seen, daemonRss(daemon), problems[0] ?? `${errors} bad lines counted; ${kinds}`);
  expect(problems).toEqual([]);
  expectNothingLost(seen);
  expect(daemon.process.pid).toBe(pid);
  expect(daemon.process.exitCode).toBeNull();
}, size(300_000, 7_200_000));
