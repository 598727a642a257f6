// A hung database: every process of a private PostgreSQL (test/helpers/pg-server.ts) —
// the postmaster and all under it — SIGSTOPped for 10 s (60 s with FAULTS_LONG=1) under
// three synced nodes and a steady UDP load. Its connections stay open and connecting
// still completes in the kernel, but nothing answers: only the daemons' own timeouts
// (connectionTimeoutMillis and query_timeout of the pools, src/presence/pg-db.ts) end
// their waits. What must hold: every query answered rightly throughout on
// every node (0 failed, 0 records lost); /ready and `presence-dns status` each answer
// within 2 s while it hangs, the status saying the database is down; SIGTERM to a node
// while it hangs exits 0 within 5 s; once it runs again changes flow (an instance
// registered on one node is answered on the other) and the stopped node's instances
// expire by their TTL.
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DAEMON_ENTRY, waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import { PgServer } from '../../helpers/pg-server.ts';
import { answers, metric, type TestInstance } from '../../presence/daemons.ts';
import { Fleet } from './fleet.ts';
import { size, sleep } from './report.ts';
import { errorMessage } from '../../../src/util/error-message.ts';

const ROOT = resolve(import.meta.dirname, '../../..');
const run = promisify(execFile);
const TTL_SECONDS = 2;
const HANG_MS = size(10_000, 60_000);
/** The product's promises while the database hangs: what a user waits at most. */
const ANSWER_MS = 2000;
const EXIT_MS = 5000;
let database: PgServer;
let fleet: Fleet;
/** What the setup started, stopped in reverse: only what it got to start if it failed halfway. */
const cleanups: Array<() => Promise<unknown>> = [];
let a: RunningDaemon;
let b: RunningDaemon;
let c: RunningDaemon;

const instances = (cell: string, net: number): TestInstance[] =>
  [1, 2, 3].map((n) => ({ id: `${cell}-${n}`, group: `${cell}${n}`, ip: `10.${net}.0.${n}` }));
const C_INSTANCES = instances('hc', 43);
/** Registered on A once the database runs again. */
const LATE: TestInstance = { id: 'ha-late', group: 'halate', ip: '10.41.0.9' };

beforeAll(async () => {
  database = await PgServer.create();
  // Thaws it first.
  cleanups.push(() => database.destroy());
  fleet = new Fleet(database.url, TTL_SECONDS);
  cleanups.push(() => fleet.stop());
  a = await fleet.start('hang-a', instances('ha', 41));
  b = await fleet.start('hang-b', instances('hb', 42));
  c = await fleet.start('hang-c', C_INSTANCES);
  await fleet.waitAllAnswer('every node to answer every instance');
});

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Answered {
  ms: number;
  /** The presence module's state in /ready, or the status's dbUp. */
  says: string;
}

/** GET /ready, given the promise's 2 s (the request is aborted after that). */
async function ready(daemon: RunningDaemon): Promise<Answered> {
  const started = performance.now();
  const res = await daemon.admin('/ready', { signal: AbortSignal.timeout(ANSWER_MS) });
  const body = (await res.json()) as { modules: { presence: { detail: { state: string } } } };
  if (res.status !== 200) throw new Error(`/ready ${res.status}: ${JSON.stringify(body)}`);
  return { ms: performance.now() - started, says: body.modules.presence.detail.state };
}

/** `presence-dns status --json`, run as an operator would, given the promise's 2 s (killed after that). */
async function status(daemon: RunningDaemon): Promise<Answered> {
  const started = performance.now();
  const env = { ...process.env };
  delete env.PRESENCE_DNS_ADMIN_TOKEN;
  const { stdout } = await run(process.execPath, [DAEMON_ENTRY, 'status', '--json', '--admin', `http://127.0.0.1:${daemon.adminPort}`],
    { cwd: ROOT, env, timeout: ANSWER_MS, killSignal: 'SIGKILL' });
  return { ms: performance.now() - started, says: `dbUp ${(JSON.parse(stdout) as { dbUp: boolean | null }).dbUp}` };
}

/**
 * Asks /ready and the CLI of each node again and again until `until` (performance.now());
 * every failure is kept. One CLI at a time: each starts a Node process, and two at once
 * would mostly measure the machine's two cores.
 */
async function askUntil(nodes: RunningDaemon[], until: number): Promise<{ ready: Answered[]; status: Answered[]; failures: string[] }> {
  const seen = { ready: [] as Answered[], status: [] as Answered[], failures: [] as string[] };
  const keep = (into: Answered[], what: string) => (asked: Promise<Answered>) => asked.then(
    (answered) => void into.push(answered),
    (err: unknown) => void seen.failures.push(`${what}: ${errorMessage(err).split('\n')[0]}`),
  );
  while (performance.now() < until) {
    const round = sleep(500);
    await Promise.all(nodes.map((d) => keep(seen.ready, `/ready of port ${d.adminPort}`)(ready(d))));
    for (const d of nodes) await keep(seen.status, `presence-dns status of port ${d.adminPort}`)(status(d));
    await round;
  }
  return seen;
}

const slowest = (answered: Answered[]) => Math.max(...answered.map((x) => x.ms));

it(`database processes stopped (SIGSTOP) for ${HANG_MS / 1000} s under load: every query answered, /ready and the CLI within 2 s, SIGTERM exits 0 within 5 s, sync resumes`, async () => {
  // What the CLI takes with the database well: it starts a Node process, so this is most of its time.
  const healthy = await status(a);
  expect(healthy.says).toBe('dbUp true');
  const expired = async () => (await metric(a, 'presence_dns_cells_expired_total')) + (await metric(b, 'presence_dns_cells_expired_total'));
  const expiredBefore = await expired();
  let asked: Awaited<ReturnType<typeof askUntil>> = { ready: [], status: [], failures: [] };
  let exit: { code: number | null; ms: number } = { code: null, ms: NaN };
  let frozenPids = 0;
  await fleet.underLoad(`database hung (every process SIGSTOPped) ${HANG_MS / 1000} s`, async () => {
    await sleep(500);
    frozenPids = database.freeze().length;
    const thawAt = performance.now() + HANG_MS;
    try {
      const asking = askUntil([a, b], thawAt - 500);
      // Long enough for every pool of C to be waiting on the database.
      await sleep(2000);
      const stopping = performance.now();
      const code = await fleet.kill(c, 'SIGTERM');
      exit = { code, ms: performance.now() - stopping };
      asked = await asking;
      await sleep(Math.max(0, thawAt - performance.now()));
    } finally {
      database.thaw();
    }
    // Changes flow again: registered on A, answered on B.
    fleet.register(a, LATE);
    await waitFor(async () => (await answers(b, LATE.group))[0] === LATE.ip, 30_000, 'an instance registered on A after the hang to be answered on B');
    await fleet.waitAllAnswer('every node to answer every instance after the hang');
    // C could not deregister (the database hung): its instances go by their TTL, counted from the database's return.
    await waitFor(async () => (await Promise.all([a, b].flatMap((d) => C_INSTANCES.map((i) => answers(d, i.group))))).every((r) => r[0] === 'NXDOMAIN'),
      30_000, "the stopped node's instances to expire");
  }, {
    daemons: [a, b],
    note: () => `${frozenPids} processes stopped; slowest while hung: /ready ${slowest(asked.ready).toFixed(0)} ms, CLI status ${slowest(asked.status).toFixed(0)} ms `
      + `(${healthy.ms.toFixed(0)} ms with the database well); SIGTERM → exit ${exit.code} in ${exit.ms.toFixed(0)} ms`,
  });

  expect(frozenPids).toBeGreaterThan(3);
  expect(asked.failures).toEqual([]);
  // Asked again and again through the hang: a few rounds at least.
  expect(asked.ready.length).toBeGreaterThanOrEqual(2 * 3);
  expect(asked.status.length).toBeGreaterThanOrEqual(2 * 3);
  // Ready (DNS answers from memory) but stale: the database has not confirmed the topology for seconds.
  expect(asked.ready.slice(-2).map((r) => r.says)).toEqual(['stale', 'stale']);
  // The syncers' own timeouts fired: each node knew the database was down while it hung.
  expect(asked.status.filter((s) => s.says === 'dbUp false').length).toBeGreaterThan(0);
  expect(exit.code).toBe(0);
  expect(exit.ms).toBeLessThan(EXIT_MS);
  // Nothing of A's or B's was expired for the hang: C's cell only.
  expect(await expired()).toBe(expiredBefore + 1);
  expect(await metric(a, 'presence_dns_db_up')).toBe(1);
  expect(await metric(b, 'presence_dns_db_up')).toBe(1);
}, HANG_MS + 90_000);
