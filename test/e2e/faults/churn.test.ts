// Churn on two DNS threads (dns.workers: 2): the topology file replaced by rename again
// and again for a few seconds (two minutes with FAULTS_LONG=1), now and then twice in
// quick succession, under a steady UDP load from several sockets (the kernel spreads them
// over both threads) and a TCP probe (answered by the main thread). They ask for names
// that stay, one whose address moves with every version, names that come and go, and a
// group that changes. Every answer must be one of the versions that may be in service
// when it was asked — the old or the new one during a swap — so failed (unanswered +
// wrong, UDP and TCP) must be 0, and the records check must never find a name missing.
// "In service" is what a socket pinned to each thread has seen (report.ts Versions), so
// no timing is assumed; how fast a swap is belongs to bench/churn.ts.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { UdpClient } from '../../dns/client.ts';
import { startDaemon, waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import { required } from '../../helpers/required.ts';
import { topologyJson, type TestInstance } from '../../helpers/topology.ts';
import { metric } from '../../presence/daemons.ts';
import { writeAtomically } from '../topology-stream.ts';
import { daemonRss, expectNothingLost, reportSeen, size, sleep, Versions, Watch, type Expectation, type Seen } from './report.ts';

const THREADS = 2;
const CHURN_MS = size(8_000, 120_000);
const STABLE = Array.from({ length: 30 }, (_, n): TestInstance => ({ id: `s${n}`, ip: `10.20.0.${n + 1}`, index: n }));
/** The instances that come and go: version v has two of them, `gen-(v mod 6)` and the next. */
const POOL = 6;
const MOVING = 'mover-0.mover.default.cf.bosh';
const GROUP = '*.gen.default.cf.bosh';

const movingIp = (version: number) => `10.21.${(version >> 8) & 255}.${version & 255}`;
const genIp = (k: number) => `10.22.0.${k + 1}`;
const gens = (version: number) => [version % POOL, (version + 1) % POOL].sort((x, y) => x - y);

function topology(version: number): string {
  return topologyJson([
    ...STABLE,
    { id: 'mover-0', group: 'mover', ip: movingIp(version), index: 0 },
    ...gens(version).map((k): TestInstance => ({ id: `gen-${k}`, group: 'gen', ip: genIp(k), index: k })),
  ], {}, version);
}

/** What version `version` answers `name` with ([]: no such name). */
function answerOf(version: number, name: string): string[] {
  if (name === MOVING) return [movingIp(version)];
  if (name === GROUP) return gens(version).map(genIp).sort();
  const gen = /^gen-(\d+)\./.exec(name);
  if (gen) return gens(version).includes(Number(gen[1])) ? [genIp(Number(gen[1]))] : [];
  return [required(STABLE.find((i) => `${i.id}.web.default.cf.bosh` === name), `a stable instance named ${name}`).ip];
}

const NAMES = [
  ...STABLE.map((i) => `${i.id}.web.default.cf.bosh`), MOVING, GROUP,
  ...Array.from({ length: POOL }, (_, k) => `gen-${k}.gen.default.cf.bosh`),
];

async function perThread(daemon: RunningDaemon): Promise<Map<string, number>> {
  const text = await (await daemon.admin('/metrics')).text();
  return new Map([...text.matchAll(/^presence_dns_udp_queries_total\{thread="(\d+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
}

/**
 * One socket answered by each DNS thread (the kernel picks the thread by the client's
 * address and port, so a socket stays on its thread): found by asking from new sockets,
 * one at a time with nothing else asking, and reading which thread's counter moved.
 */
async function socketPerThread(daemon: RunningDaemon): Promise<UdpClient[]> {
  const found = new Map<string, UdpClient>();
  for (let tries = 0; found.size < THREADS; tries++) {
    if (tries === 64) throw new Error(`64 sockets reached only thread(s) ${[...found.keys()].join(', ')}`);
    const client = new UdpClient(daemon.dnsPort);
    const before = await perThread(daemon);
    expect((await client.ask(MOVING, 1, 5000))?.addresses).toEqual([movingIp(1)]);
    const thread = [...(await perThread(daemon))].find(([t, n]) => n > (before.get(t) ?? 0))?.[0];
    if (thread !== undefined && !found.has(thread)) found.set(thread, client);
    else client.close();
  }
  return [...found.values()];
}

let daemon: RunningDaemon;
let pinned: UdpClient[] = [];

beforeAll(async () => {
  daemon = await startDaemon({ files: { 'topology.json': topology(1) }, config: { dns: { workers: THREADS }, log: { level: 'info' } } });
  pinned = await socketPerThread(daemon);
});

afterAll(async () => {
  for (const c of pinned) c.close();
  expect(await daemon.stop()).toBe(0);
});

it(`the topology file replaced again and again for ${CHURN_MS / 1000} s on two DNS threads, under UDP and TCP load: 0 failed queries, 0 records lost`, async () => {
  const versions = new Versions(1);
  const expected: Expectation = {
    names: () => NAMES,
    allowed: (name, sentAt, answeredAt) => {
      const distinct = new Map(versions.between(sentAt, answeredAt).map((v) => answerOf(v, name)).map((a) => [a.join(), a]));
      return [...distinct.values()];
    },
  };
  const reloadsBefore = await metric(daemon, 'presence_dns_topology_reloads_total');
  const threadsBefore = await perThread(daemon);
  const watch = new Watch({ daemons: [daemon], expected, load: { sockets: 6 }, tcp: {} });
  let version = 1;
  let swaps = 0;
  let seen: Seen;
  try {
    for (const until = performance.now() + CHURN_MS; performance.now() < until; swaps++) {
      // Every third swap two versions in quick succession: the first may never be served.
      for (let k = swaps % 3 === 2 ? 2 : 1; k > 0; k--) {
        version++;
        versions.wrote(version);
        writeAtomically(daemon.dir, 'topology.json', topology(version));
      }
      const newest = version;
      await waitFor(async () => (await Promise.all(pinned.map((c) => c.ask(MOVING, 1, 2000)))).every((r) => r?.addresses.join() === movingIp(newest)),
        20_000, `version ${newest} to be answered by every thread`);
      versions.served(newest);
    }
    // A last stretch with nothing changing.
    await sleep(500);
  } finally {
    // The row and the load's figures even when the churn failed.
    seen = await watch.stop();
    reportSeen(`topology file replaced ${swaps}× under UDP + TCP load, dns.workers ${THREADS}`, seen, daemonRss(daemon),
      `${version - 1} versions; TCP ${seen.tcp?.sent ?? 0} queries, ${seen.tcp?.failed ?? 0} failed`);
  }
  expectNothingLost(seen);
  expect(seen.tcp?.sent).toBeGreaterThan(100);
  // Each swap was read (the debounce may merge a quick pair), and both threads answered the load.
  expect((await metric(daemon, 'presence_dns_topology_reloads_total')) - reloadsBefore).toBeGreaterThanOrEqual(swaps);
  const threadsAfter = await perThread(daemon);
  expect([...threadsAfter].filter(([t, n]) => n > (threadsBefore.get(t) ?? 0) + 100).map(([t]) => t).sort()).toHaveLength(THREADS);
}, CHURN_MS + 60_000);
