// Flipped, truncated and swapped image caches (200 rounds; 2,000 with FAULTS_LONG=1),
// seeded so a failure replays. A DNS-only sidecar serves a synced snapshot whose cached
// image (`topology.json.image`, written by the product's own writer: TopologyState and
// OwnedFile, as a syncing node writes it) is damaged before each read: bytes flipped
// anywhere, the header too; the file cut short or grown; a range zeroed; another
// snapshot's valid cache put in its place; or the good cache restored. The sidecar is
// made to read it again the way it reads a cache at all: the snapshot is rewritten
// atomically with the same bytes (a new file, so it is read anew, cache first).
//
// The test knows by construction what each cache is: the good one (served from the
// cache), another snapshot's valid cache or a valid cache of another format (stale: the
// snapshot is parsed, nothing counted), or damaged — anywhere, the format word too —
// (rejected: never served, counted, shown as cacheError). Under a
// steady UDP load that checks every answer, it asserts after each read that every name is
// answered with exactly its addresses (never NXDOMAIN for a known name; PTR too, for a
// sample of addresses), that each damaged cache was counted and the daemon never died.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { UdpClient } from '../../dns/client.ts';
import { compileImage } from '../../../src/image/builder.ts';
import { OwnedFile, TopologyState } from '../../../src/control/state.ts';
import type { Instance } from '../../../src/image/instance.ts';
import { instanceName } from '../../../src/image/view.ts';
import { startDaemon, tempDir, waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import { required } from '../../helpers/required.ts';
import { silentLogger } from '../../presence/fixtures.ts';
import { flipBytes, instance, prng, randomBytes, zeroRange, type Random } from './mutations.ts';
import { daemonRss, expectNothingLost, reportSeen, size, Watch } from './report.ts';
import { askAll, countersWhen, readyTopology, topologyCounters, wrongAnswers } from './topology-status.ts';

const ROUNDS = size(200, 2_000);
const SEED = 0x1ca4e;
const CLUSTER = '3e5a9d10-0000-4000-8000-0000000ca4e1';
/** The cache's header (image-cache.ts): magic, cache format, snapshot bytes, image bytes, reserved, CRC-32. */
const HEADER_BYTES = 32;
const FORMAT_WORD = [4, 8] as const;
/** Where the CRC-32 of the header's first 28 bytes and of the image stands. */
const CRC_AT = 28;

/** `count` instances in six groups, each with an index (so its address's PTR names it twice). */
function fleet(prefix: string, count: number, net: number): Instance[] {
  return Array.from({ length: count }, (_, k) => instance(`${prefix}${k}`, `c${k % 6}`, `10.${net}.${k >> 8}.${(k & 255) + 1}`, k));
}

/** A syncing node's files for `instances` at `version`, written by the product: snapshot, journal, and the snapshot's cached image. */
function syncedFiles(instances: Instance[], version: number): Record<'snapshot' | 'journal' | 'image', Buffer> {
  const file = join(tempDir(), 'topology.json');
  const state = new TopologyState({ domains: [], post: () => undefined, logger: silentLogger });
  state.own(new OwnedFile(file, CLUSTER, silentLogger, state.counts));
  state.replace(compileImage({ version, instances, aliases: new Map(), ptrRecords: null, generatedAt: null, source: null, cluster: null }));
  required(state.owned, 'the owned file').close();
  return { snapshot: readFileSync(file), journal: readFileSync(`${file}.journal`), image: readFileSync(`${file}.image`) };
}

const SERVED = fleet('ic', 150, 88);
const OTHER = fleet('ox', 90, 89);
const GROUP_NAMES = new Map(Array.from({ length: 6 }, (_, g) => [`q-s4.c${g}.default.cf.bosh`, SERVED.filter((i) => i.group === `c${g}`).map((i) => i.ip).sort()]));
/** What DNS must answer throughout: every instance by id and by index, every group. */
const EXPECTED = new Map<string, string[]>([
  ...SERVED.flatMap((i) => [[instanceName(i), [i.ip]], [instanceName(i, String(i.index)), [i.ip]]] as Array<[string, string[]]>),
  ...GROUP_NAMES,
]);
/** What the steady load and the records check ask (each records sample is one burst): every group and every fifth instance. */
const WATCHED = new Map<string, string[]>([...SERVED.filter((i) => (i.index ?? 0) % 5 === 0).map((i) => [instanceName(i), [i.ip]] as [string, string[]]), ...GROUP_NAMES]);

type Verdict = 'served' | 'stale' | 'rejected';

/**
 * The cache a round writes, and what it is by construction: the good cache is served;
 * another snapshot's valid cache, or a valid cache of another format (its checksum
 * holds: another daemon version wrote it), is stale; any other change is damage, rejected.
 */
function damaged(good: Buffer, other: Buffer, random: Random): { kind: string; bytes: Buffer; verdict: Verdict } {
  const kinds: Array<[string, () => Buffer]> = [
    ['flipped', () => flipBytes(good, random.between(1, 8), random)],
    ['header flipped', () => flipBytes(good, random.between(1, 3), random, 0, HEADER_BYTES)],
    ['truncated', () => good.subarray(0, random.int(good.length))],
    ['grown', () => Buffer.concat([good, randomBytes(random.between(1, 64), random)])],
    ['range zeroed', () => zeroRange(good, random.int(good.length), random.between(1, 256))],
    ["another snapshot's", () => other],
    ['another format', () => otherFormat(good)],
    ['good', () => good],
  ];
  const [kind, make] = random.pick(kinds);
  const bytes = make();
  const verdict: Verdict = bytes.equals(good) ? 'served' : bytes.equals(other) || kind === 'another format' ? 'stale' : 'rejected';
  return { kind, bytes, verdict };
}

/** The same cache as another cache format would write it: the format word changed, the checksum made again. */
function otherFormat(good: Buffer): Buffer {
  const bytes = Buffer.from(good);
  bytes.writeUInt32LE(bytes.readUInt32LE(FORMAT_WORD[0]) + 1, FORMAT_WORD[0]);
  bytes.writeUInt32LE(crc32(bytes.subarray(HEADER_BYTES), crc32(bytes.subarray(0, CRC_AT))), CRC_AT);
  return bytes;
}

/** The PTR names of `ip`, sorted; null when unanswered. */
async function ptr(client: UdpClient, ip: string): Promise<string[] | null> {
  const reply = await client.ask(`${ip.split('.').reverse().join('.')}.in-addr.arpa`, 12, 3000);
  return reply === null ? null : reply.packet.answers.map((a) => String(a.domain)).sort();
}

let daemon: RunningDaemon;
let files: ReturnType<typeof syncedFiles>;
let otherImage: Buffer;

/** Where each topology the worker put in service so far was read from (its "topology in service" log lines). */
const loads = () => daemon.logs.filter((l) => l.includes('"msg":"topology in service"') && l.includes('"from":')).map((l) => (JSON.parse(l) as { from: string }).from);

/** Rewrites the snapshot with the same bytes, as a writer replaces a file: a new file, so the sidecar reads it anew, cache first. */
function rewriteSnapshot(): void {
  const tmp = join(daemon.dir, '.topology.json.tmp');
  writeFileSync(tmp, files.snapshot);
  renameSync(tmp, join(daemon.dir, 'topology.json'));
}

beforeAll(async () => {
  files = syncedFiles(SERVED, 40);
  otherImage = syncedFiles(OTHER, 41).image;
  const dir = tempDir();
  for (const [name, bytes] of [['topology.json', files.snapshot], ['topology.json.journal', files.journal], ['topology.json.image', files.image]] as const) {
    writeFileSync(join(dir, name), bytes);
  }
  daemon = await startDaemon({ dir, config: { log: { level: 'info' } } });
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

it(`${ROUNDS} damaged image caches read by a sidecar: answers stay exactly the snapshot's, each damaged cache rejected and counted, a stale one not`, async () => {
  const pid = daemon.process.pid;
  await waitFor(() => loads().length === 1, 15_000, 'the first load to be logged');
  // The premise: the product's own cache is good, and served.
  expect(loads()).toEqual(['image cache']);
  const watch = new Watch({ daemons: [daemon], expected: WATCHED });
  const random = prng(SEED);
  const client = new UdpClient(daemon.dnsPort);
  const cache = join(daemon.dir, 'topology.json.image');
  const names = [...EXPECTED.keys()];
  const tally = new Map<string, number>();
  const problems: string[] = [];
  let rejected = 0;
  for (let n = 0; n < ROUNDS && problems.length === 0; n++) {
    const { kind, bytes, verdict } = damaged(files.image, otherImage, random);
    const where = `round ${n} (${kind}, ${bytes.length} bytes: ${verdict})`;
    tally.set(`${kind} ${verdict}`, (tally.get(`${kind} ${verdict}`) ?? 0) + 1);
    const before = await topologyCounters(daemon);
    writeFileSync(cache, bytes);
    rewriteSnapshot();
    if (verdict === 'rejected') rejected++;
    const c = await countersWhen(daemon, (now) => now.reloads > before.reloads && now.cacheRejects >= rejected, `${where}: the snapshot read again`);
    await waitFor(() => loads().length >= c.reloads, 15_000, `${where}: its load logged`);
    const from = loads().at(-1);
    if (c.reloads !== before.reloads + 1) problems.push(`${where}: read ${c.reloads - before.reloads} times`);
    if (c.cacheRejects !== rejected) problems.push(`${where}: ${c.cacheRejects} caches counted as rejected, ${rejected} expected`);
    if (from !== (verdict === 'served' ? 'image cache' : 'file')) problems.push(`${where}: served from the ${from}`);
    if (c.revision !== 40 || c.records !== SERVED.length) problems.push(`${where}: version ${c.revision} with ${c.records} records in service`);
    if (c.workerRestarts !== 0) problems.push(`${where}: the topology worker restarted`);
    const wrong = wrongAnswers(await askAll(daemon, names), EXPECTED);
    if (wrong.length) problems.push(`${where}: ${wrong.slice(0, 3).join('; ')}`);
    for (const i of [random.pick(SERVED), random.pick(SERVED), random.pick(SERVED)]) {
      const want = [instanceName(i), instanceName(i, String(i.index))].sort();
      const got = await ptr(client, i.ip);
      if (got?.join() !== want.join()) problems.push(`${where}: PTR ${i.ip} answered ${got === null ? 'nothing' : got.join(',')}`);
    }
    const ready = await readyTopology(daemon);
    if (ready.status !== 200) problems.push(`${where}: /ready ${ready.status}`);
    const shown = ready.detail.cacheError;
    if (verdict === 'rejected' && !/^cached image \S*topology\.json\.image rejected: .+; served from the snapshot and journal instead$/.test(shown ?? '')) {
      problems.push(`${where}: /ready cacheError ${JSON.stringify(shown)}`);
    }
    if (verdict === 'served' && shown !== null) problems.push(`${where}: the good cache served, but /ready still shows ${JSON.stringify(shown)}`);
  }
  client.close();
  const seen = await watch.stop();
  const kinds = [...tally].map(([kind, count]) => `${kind} ${count}`).join(', ');
  reportSeen(`${ROUNDS.toLocaleString('en')} damaged image caches, a sidecar reading them`, seen, daemonRss(daemon), problems[0] ?? `${rejected} rejected; ${kinds}`);
  expect(problems).toEqual([]);
  expectNothingLost(seen);
  expect(daemon.process.pid).toBe(pid);
  expect(daemon.process.exitCode).toBeNull();
}, size(180_000, 1_800_000));
