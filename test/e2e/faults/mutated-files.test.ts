// Randomly mutated topology files in a row (500; 10,000 with FAULTS_LONG=1), seeded so a
// failure replays: flipped bytes, cut files, cells of the wrong type, names that cannot be
// encoded, and now and then a good file. Each is written atomically over the file the
// running daemon serves, under a steady UDP load. The daemon never crashes, answers every
// query, and each file is served whole or rejected whole.
//
// What each file should do is decided by the test's own reference reader: a few lines
// that implement the rules of docs/topology-file.md (below), sharing nothing with the
// daemon's reader. From it the test knows, for every file, whether it is served, its
// version, how many records it has, and the right answer to every name it asks: each
// group, each instance by id, and the alias. The steady load accepts only a right answer
// from the file in service — or, while a file is being swapped in, the one before it.
import { isIP } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../../helpers/daemon.ts';
import { required } from '../../helpers/required.ts';
import { Probe } from '../../helpers/probe.ts';
import { topologyJson } from '../../helpers/topology.ts';
import { writeAtomically } from '../topology-stream.ts';
import { prng, type Random } from './mutations.ts';
import { daemonRss, report, size, Versions } from './report.ts';
import { askAll, countersWhen, topologyCounters, type Answer } from './topology-status.ts';

const FILES = size(500, 10_000);
const INSTANCES = 20;
const GROUPS = 4;
const ALIAS = 'web.service.internal';

const base = (version: number) => topologyJson(
  Array.from({ length: INSTANCES }, (_, n) => ({ id: `m${n}`, group: `g${n % GROUPS}`, ip: `10.90.0.${n + 1}`, index: n, ports: { http: 8000 + n } })),
  { aliases: { [ALIAS]: ['*.g0.default.cf.bosh'] } }, version);

/** Names to put in name columns and alias keys: most cannot be written as a DNS name ('-' and 'a b' can: one byte per character). */
const NAMES_TO_TRY = ['a..b', 'x'.repeat(64), '', `${'abcdefghij.'.repeat(25)}bosh`, '-', 'a b', '.'];
const CELL_VALUES: unknown[] = [null, 7, -1.5, true, {}, [], ['x'], 'not-an-ip', '999.1.1.1', { a: 1 }];

/** The k-th mutated file. */
function mutated(k: number, random: Random): string {
  const good = base(k + 2);
  switch (k % 5) {
    case 0: {
      const bytes = Buffer.from(good);
      for (let flips = random.between(1, 4); flips > 0; flips--) bytes[random.int(bytes.length)] = random.between(32, 126);
      return bytes.toString('latin1');
    }
    case 1:
      return good.slice(0, random.int(good.length));
    case 2: {
      const doc = JSON.parse(good) as { record_infos: unknown[][] };
      for (let changes = random.between(1, 3); changes > 0; changes--) {
        const row = random.pick(doc.record_infos);
        row[random.int(row.length)] = random.pick(CELL_VALUES);
      }
      return JSON.stringify(doc);
    }
    case 3: {
      const doc = JSON.parse(good) as { record_keys: string[]; record_infos: unknown[][]; aliases: Record<string, string[]> };
      const nameColumns = ['id', 'instance_group', 'network', 'deployment', 'domain'].map((c) => doc.record_keys.indexOf(c));
      random.pick(doc.record_infos)[random.pick(nameColumns)] = random.pick(NAMES_TO_TRY);
      if (random.chance(1 / 3)) doc.aliases[random.pick(NAMES_TO_TRY)] = ['*.g1.default.cf.bosh'];
      return JSON.stringify(doc);
    }
    default:
      return good;
  }
}

// ---- The reference reader: docs/topology-file.md's rules for a topology file, and nothing else. ----
//  - A file that is not a JSON object, or whose record_keys is not a list of names with the
//    required columns id, instance_group (or group), network, deployment, ip and domain,
//    or whose record_infos is not a list, or whose version is not a non-negative integer,
//    is rejected whole.
//  - A row of the wrong width or with a bad value is skipped: names (id, instance_group,
//    network, deployment, az; and domain, a dotted name) must be DNS labels of 1–63 bytes,
//    one byte per character, compared lower-case without a trailing dot; the whole name
//    (first label, group, network, deployment, domain) at most 253 bytes, by id and by
//    index; ip an IP address; numbers non-negative integers (or digit strings); health
//    running, failing or unchecked; ports a map of names to 1–65535.
//  - An alias is a valid name mapped to a list of valid names (invalid ones are dropped).

/** A row as DNS serves it. */
interface Row {
  first: string;
  group: string;
  network: string;
  deployment: string;
  domain: string;
  ip: string;
  family: number;
}

interface Reference {
  version: number;
  rows: Row[];
  /** The targets of ALIAS, or null when the file has no such alias. */
  alias: string[] | null;
}

class Skip extends Error {}

const oneBytePerCharacter = (s: string) => /^[^\u0100-\uffff]*$/.test(s);
const lower = (s: string) => (s.toLowerCase().endsWith('.') ? s.toLowerCase().slice(0, -1) : s.toLowerCase());
/** A name in text form ("" the root): labels of 1–63 bytes, at most 253 bytes, one byte per character. */
const isName = (name: string) => name.length <= 253 && oneBytePerCharacter(name) && (name === '' || name.split('.').every((l) => l.length >= 1 && l.length <= 63));
const absent = (v: unknown) => v === undefined || v === null || v === '';
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function count(v: unknown): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new Skip();
  return n;
}

function readRow(info: unknown, width: number, columns: Map<string, number>): Row {
  if (!Array.isArray(info) || info.length !== width) throw new Skip();
  const cell = (column: string): unknown => {
    const at = columns.get(column);
    return at === undefined ? undefined : info[at];
  };
  /** A label column's value, lower-cased, or null when absent. */
  const label = (column: string) => {
    const v = cell(column);
    if (absent(v)) return null;
    if (typeof v !== 'string' || lower(v).includes('.') || lower(v) === '' || !isName(lower(v))) throw new Skip();
    return lower(v);
  };
  const requiredLabel = (column: string) => {
    const v = label(column);
    if (v === null) throw new Skip();
    return v;
  };
  const ip = cell('ip');
  if (typeof ip !== 'string' || isIP(ip) === 0) throw new Skip();
  const domainText = cell('domain');
  const domain = typeof domainText === 'string' ? lower(domainText) : '';
  // A negative answer's SOA names hostmaster.<domain>: that must be a name too.
  if (domain === '' || !isName(domain) || !isName(`hostmaster.${domain}`)) throw new Skip();
  const [id, group, network, deployment] = ['id', 'instance_group', 'network', 'deployment'].map(requiredLabel);
  label('az');
  for (const c of ['num_id', 'az_id', 'network_id']) if (!absent(cell(c))) count(cell(c));
  const index = absent(cell('instance_index')) ? null : count(cell('instance_index'));
  const groupIds = cell('group_ids');
  if (groupIds !== undefined && groupIds !== null) {
    if (!Array.isArray(groupIds)) throw new Skip();
    groupIds.forEach(count);
  }
  const ports = cell('ports');
  if (ports !== undefined && ports !== null) {
    if (!isObject(ports) || !Object.values(ports).every((p) => Number.isInteger(p) && (p as number) >= 1 && (p as number) <= 65535)) throw new Skip();
  }
  if (!absent(cell('health')) && !['running', 'failing', 'unchecked'].includes(cell('health') as string)) throw new Skip();
  const rest = [group, network, deployment, domain];
  if ([id, ...rest].join('.').length > 253 || (index !== null && [String(index), ...rest].join('.').length > 253)) throw new Skip();
  return { first: id, group, network, deployment, domain, ip, family: isIP(ip) };
}

/** The targets of ALIAS (a BOSH alias object stands as '(object)'), or null when the file has no such alias. */
function aliasTargets(aliases: unknown): string[] | null {
  if (!isObject(aliases)) return null;
  let targets: string[] | null = null;
  for (const [name, list] of Object.entries(aliases)) {
    if (lower(name) !== ALIAS || !Array.isArray(list)) continue;
    const valid = list.flatMap((t: unknown) => (typeof t === 'string'
      ? (t.trim() !== '' && isName(lower(t)) ? [lower(t)] : [])
      : isObject(t) && 'group_id' in t && 'root_domain' in t ? ['(object)'] : []));
    if (valid.length) targets = [...(targets ?? []), ...valid];
  }
  return targets;
}

function reference(text: string): Reference | null {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(doc)) return null;
  const keys = doc.record_keys;
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string') || !Array.isArray(doc.record_infos)) return null;
  const columns = new Map(keys.map((k, i) => [({ group: 'instance_group', index: 'instance_index' } as Record<string, string>)[k] ?? k, i]));
  if (!['id', 'instance_group', 'network', 'deployment', 'ip', 'domain'].every((c) => columns.has(c))) return null;
  const version = doc.version === undefined ? 0 : doc.version;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) return null;
  const rows = doc.record_infos.flatMap((info) => {
    try {
      return [readRow(info, keys.length, columns)];
    } catch (err) {
      if (err instanceof Skip) return [];
      throw err;
    }
  });
  return { version, rows, alias: aliasTargets(doc.aliases) };
}

// ---- What the daemon must answer for a file the reference reads. ----

/** A right answer: these addresses (sorted; [] for no such name, NXDOMAIN or an empty NOERROR), REFUSED, or anything (not computed). */
type Expected = string[] | 'refused' | 'any';

const GROUP_NAMES = Array.from({ length: GROUPS }, (_, g) => `q-s4.g${g}.default.cf.bosh`);
const ID_NAMES = Array.from({ length: INSTANCES }, (_, n) => `m${n}.g${n % GROUPS}.default.cf.bosh`);
const PROBED = [...GROUP_NAMES, ...ID_NAMES, ALIAS];

function expectedAnswers(file: Reference): Map<string, Expected> {
  const a = (match: (r: Row) => boolean) => file.rows.filter((r) => r.family === 4 && r.network === 'default' && r.deployment === 'cf' && r.domain === 'bosh' && match(r)).map((r) => r.ip).sort();
  const g0 = a((r) => r.group === 'g0');
  // The alias as the base file has it answers the group; without the alias the name is no served domain's: REFUSED.
  const alias: Expected = file.alias === null ? 'refused' : file.alias.join() === '*.g0.default.cf.bosh' ? g0 : 'any';
  return new Map<string, Expected>([
    ...GROUP_NAMES.map((name, g) => [name, a((r) => r.group === `g${g}`)] as [string, Expected]),
    ...ID_NAMES.map((name) => [name, a((r) => `${r.first}.${r.group}.default.cf.bosh` === name)] as [string, Expected]),
    [ALIAS, alias],
  ]);
}

function isRight(expected: Expected, answer: Answer): boolean {
  if (expected === 'any') return answer !== null;
  if (answer === null) return false;
  if (expected === 'refused') return !Array.isArray(answer) && answer.rcode === 5;
  if (expected.length === 0) return !Array.isArray(answer) && (answer.rcode === 0 || answer.rcode === 3);
  return Array.isArray(answer) && answer.join() === expected.join();
}

let daemon: RunningDaemon;

beforeAll(async () => {
  daemon = await startDaemon({ files: { 'topology.json': base(1) }, config: { log: { level: 'info' } } });
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

it(`${FILES} randomly mutated topology files in a row: no crash, each served whole or rejected whole, every answer right`, async () => {
  const random = prng(0xf11e5);
  const first = required(reference(base(1)), 'the first file, as the reference reads it');
  expect(first.rows).toHaveLength(INSTANCES);
  const firstAnswers = expectedAnswers(first);
  // The files that go into service, numbered (not by their version: a mutated file may repeat one): what each answers.
  const answers = new Map<number, Map<string, Expected>>([[1, firstAnswers]]);
  const versions = new Versions(1);
  const answerOf = (n: number, name: string) => required(required(answers.get(n), `the answers of file ${n}`).get(name), `the answer for ${name} in file ${n}`);
  const allowed = (name: string, sentAt: number) => versions.between(sentAt, performance.now()).map((n) => answerOf(n, name));
  const probe = new Probe(daemon.dnsPort, PROBED, {
    intervalMs: 10,
    timeoutMs: 3000,
    expect: (name, rcode, addresses, sentAt) => allowed(name, sentAt).some((e) => isRight(e, addresses.length ? addresses : { rcode })),
  }).start();
  const rssBefore = daemonRss(daemon);
  let inService = first;
  let inServiceAnswers = firstAnswers;
  let rejected = 0;
  let unjudged = 0;
  const mismatches: string[] = [];
  for (let k = 0; k < FILES && mismatches.length < 5; k++) {
    const text = mutated(k, random);
    const file = reference(text);
    const before = await topologyCounters(daemon);
    if (file) {
      inService = file;
      inServiceAnswers = expectedAnswers(file);
      answers.set(k + 2, inServiceAnswers);
      versions.wrote(k + 2);
      if (inServiceAnswers.get(ALIAS) === 'any') unjudged++;
    } else {
      rejected++;
    }
    writeAtomically(daemon.dir, 'topology.json', text);
    const now = await countersWhen(daemon, (c) => c.reloads + c.reloadFailures > before.reloads + before.reloadFailures, `file ${k} to be read`);
    if (file) versions.served(k + 2);
    const served = now.reloads > before.reloads;
    const what = `file ${k} (${file ? `v${file.version}, ${file.rows.length} records` : 'rejected'} by the reference)`;
    if (served !== (file !== null)) mismatches.push(`${what}: ${served ? 'served' : 'rejected'} by the daemon`);
    if (now.revision !== inService.version || now.records !== inService.rows.length) mismatches.push(`${what}: v${now.revision} with ${now.records} records in service`);
    const got = await askAll(daemon, PROBED);
    for (const name of PROBED) {
      const expected = required(inServiceAnswers.get(name), `the answer for ${name}`);
      if (!isRight(expected, got.get(name) ?? null)) mismatches.push(`${what}: ${name} answered ${JSON.stringify(got.get(name))}, expected ${JSON.stringify(expected)}`);
    }
  }
  const seen = await probe.stop();
  report({
    scenario: `${FILES.toLocaleString('en')} mutated topology files`, sent: seen.sent, failed: seen.unanswered + seen.wrong.length,
    recordsLost: mismatches.length, rssBytes: daemonRss(daemon),
    note: mismatches[0] ?? `${rejected} rejected whole, ${FILES - rejected} served; alias not judged for ${unjudged}; RSS growth ${((daemonRss(daemon) - rssBefore) / 2 ** 20).toFixed(1)} MB`,
  });
  expect(mismatches).toEqual([]);
  expect(seen.unanswered).toBe(0);
  expect(seen.wrong).toEqual([]);
  expect(rejected).toBeGreaterThan(FILES / 5);
  expect(rejected).toBeLessThan(FILES);
  expect(daemon.process.exitCode).toBeNull();
}, size(150_000, 3_600_000));
