// Randomly mutated topology files in a row (500; 10,000 with FAULTS_LONG=1), seeded so a
// failure replays: flipped bytes, cut files, cells of the wrong type, names that cannot be
// encoded, and now and then a good file. Each is written atomically over the file the
// running daemon serves, under a steady UDP load. The daemon never crashes, answers every
// query, and each file is served whole (its version and exactly the records the reader
// finds in it) or rejected whole (the last good version stays in service, the rejection
// counted).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseTopology } from '../../../src/topology/reader.ts';
import { instanceName } from '../../../src/topology/view.ts';
import { startDaemon, type RunningDaemon } from '../../helpers/daemon.ts';
import { Probe } from '../../helpers/probe.ts';
import { topologyJson } from '../../helpers/topology.ts';
import { writeAtomically } from '../topology-stream.ts';
import { daemonRss, report, size } from './report.ts';

const FILES = size(500, 10_000);
let daemon: RunningDaemon;

/** xorshift32: seeded, so the same files are written on every run. */
function prng(seed: number): (n: number) => number {
  let x = seed | 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

const base = (version: number) => topologyJson(
  Array.from({ length: 20 }, (_, n) => ({ id: `m${n}`, group: `g${n % 4}`, ip: `10.90.0.${n + 1}`, index: n, ports: { http: 8000 + n } })),
  { aliases: { 'web.service.internal': ['*.g0.default.cf.bosh'] } }, version);

const BAD_NAMES = ['a..b', 'x'.repeat(64), '', `${'abcdefghij.'.repeat(25)}bosh`, '-', 'a b', '.'];
const WRONG_VALUES: unknown[] = [null, 7, -1.5, true, {}, [], ['x'], 'not-an-ip', '999.1.1.1', { a: 1 }];

/** The k-th mutated file. */
function mutated(k: number, int: (n: number) => number): string {
  const good = base(k + 2);
  switch (k % 5) {
    case 0: {
      const bytes = Buffer.from(good);
      for (let flips = 1 + int(4); flips > 0; flips--) bytes[int(bytes.length)] = 32 + int(95);
      return bytes.toString('latin1');
    }
    case 1:
      return good.slice(0, int(good.length));
    case 2: {
      const doc = JSON.parse(good) as { record_infos: unknown[][] };
      for (let changes = 1 + int(3); changes > 0; changes--) {
        const row = doc.record_infos[int(doc.record_infos.length)];
        row[int(row.length)] = WRONG_VALUES[int(WRONG_VALUES.length)];
      }
      return JSON.stringify(doc);
    }
    case 3: {
      const doc = JSON.parse(good) as { record_keys: string[]; record_infos: unknown[][]; aliases: Record<string, string[]> };
      const nameColumns = ['id', 'instance_group', 'network', 'deployment', 'domain'].map((c) => doc.record_keys.indexOf(c));
      const row = doc.record_infos[int(doc.record_infos.length)];
      row[nameColumns[int(nameColumns.length)]] = BAD_NAMES[int(BAD_NAMES.length)];
      if (int(3) === 0) doc.aliases[BAD_NAMES[int(BAD_NAMES.length)]] = ['*.g1.default.cf.bosh'];
      return JSON.stringify(doc);
    }
    default:
      return good;
  }
}

interface Served {
  /** Files read, whether served or rejected. */
  reads: number;
  version: number;
  records: number;
}

/** What the daemon serves, from one scrape of /metrics. */
async function served(): Promise<Served> {
  const text = await (await daemon.admin('/metrics')).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    reads: value('presence_dns_topology_reloads_total') + value('presence_dns_topology_reload_failures_total'),
    version: value('presence_dns_topology_revision'),
    records: value('presence_dns_topology_records'),
  };
}

/** The state once the daemon has read one more file than `before` (polled often: this runs thousands of times). */
async function afterRead(before: number, what: string): Promise<Served> {
  for (const deadline = Date.now() + 5000; Date.now() < deadline;) {
    const now = await served();
    if (now.reads > before) return now;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what} to be read`);
}

beforeAll(async () => {
  daemon = await startDaemon({ files: { 'topology.json': base(1) }, config: { log: { level: 'info' } } });
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

it(`${FILES} randomly mutated topology files in a row: no crash, each served or rejected whole`, async () => {
  const int = prng(0xf11e5);
  // Any answer will do (a mutated file may drop the name): what must not happen is no answer.
  const probe = new Probe(daemon.dnsPort, ['q-s0.g0.default.cf.bosh', 'web.service.internal'], { intervalMs: 10, timeoutMs: 1500, expect: () => true }).start();
  const rssBefore = daemonRss(daemon);
  let inService = 1;
  let rejected = 0;
  const mismatches: string[] = [];
  for (let k = 0; k < FILES; k++) {
    const text = mutated(k, int);
    const expected = parseTopology(text);
    const before = (await served()).reads;
    writeAtomically(daemon.dir, 'topology.json', text);
    const now = await afterRead(before, `file ${k}`);
    const records = now.records;
    if (expected.ok) {
      inService = expected.topology.version;
      const names = new Set(expected.topology.instances.map((i) => instanceName(i))).size;
      if (now.version !== inService || records !== names) mismatches.push(`file ${k}: served v${now.version} with ${records} records, the reader finds v${inService} with ${names}`);
    } else {
      rejected++;
      if (now.version !== inService) mismatches.push(`file ${k} (${expected.error}) was not rejected whole: v${now.version} in service, v${inService} expected`);
    }
  }
  const seen = await probe.stop();
  report({
    scenario: `${FILES.toLocaleString('en')} mutated topology files`, sent: seen.sent, failed: seen.unanswered + seen.wrong.length,
    recordsLost: mismatches.length, rssBytes: daemonRss(daemon), note: `${rejected} rejected whole, ${FILES - rejected} served; RSS growth ${((daemonRss(daemon) - rssBefore) / 2 ** 20).toFixed(1)} MB`,
  });
  expect(mismatches).toEqual([]);
  expect(seen.unanswered).toBe(0);
  expect(rejected).toBeGreaterThan(FILES / 5);
  expect(rejected).toBeLessThan(FILES);
  expect(daemon.process.exitCode).toBeNull();
}, size(150_000, 3_600_000));
