// Local health checks across nodes, as a user runs them: node A registers instances with
// TCP, HTTP and command checks against services this test owns on loopback; node B shares
// A's PostgreSQL and answers `dig`. When a service stops, B's `q-s3` (running) stops
// returning that instance, `q-s1` (failing) returns only it and the smart `q-s0` leaves it
// out; a command check that hangs is killed at its timeout.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, tempDir, waitFor, type RunningDaemon } from '../helpers/daemon.ts';
import { dig } from '../helpers/dig.ts';
import { testDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { presenceConfig } from '../presence/daemons.ts';
import { processRunning } from '../checks/processes.ts';
import { errorMessage } from '../../src/util/error-message.ts';

const CONVERGE_MS = 15_000;
/** Short intervals so the test takes seconds; rise 2 shows a recovery needs two passes. */
const FAST = { interval: '200ms', timeout: '200ms', rise: 2, fall: 1 };

let database: TestDatabase;
let a: RunningDaemon;
let b: RunningDaemon;
/** What the setup started, stopped in reverse: only what it got to start if it failed halfway. */
const cleanups: Array<() => unknown> = [];
const work = tempDir('presence-checks-');
const tcp: Server[] = [];
const httpStatus = [200, 200];
const flags = [join(work, 'flag-1'), join(work, 'flag-2')];
const hangPids = join(work, 'hang-pids');

async function listen(server: Server | ReturnType<typeof createHttpServer>, port = 0): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** What `dig` on `daemon` returns for a q- filter of a group: the sorted addresses (none: NOERROR, no data), or the rcode. */
async function lookup(daemon: RunningDaemon, filter: string, group: string): Promise<string[]> {
  const r = await dig(daemon.dnsPort, `${filter}.${group}.default.cf.bosh`);
  return r.status === 'NOERROR' ? r.answer.map((x) => x.data).sort() : [r.status];
}

async function until(daemon: RunningDaemon, filter: string, group: string, want: string[]): Promise<void> {
  let last: string[] = [];
  await waitFor(async () => JSON.stringify((last = await lookup(daemon, filter, group))) === JSON.stringify(want), CONVERGE_MS,
    `${filter}.${group} to be ${want.join(', ')}`).catch((err: unknown) => {
    throw new Error(`${errorMessage(err)} (last: ${last.join(', ')})`, { cause: err });
  });
}

beforeAll(async () => {
  database = await testDatabase();
  cleanups.push(() => database.drop());
  const tcpPorts: number[] = [];
  for (let i = 0; i < 2; i++) {
    const server = createServer((socket) => socket.destroy());
    tcpPorts.push(await listen(server));
    tcp.push(server);
    cleanups.push(() => server.close());
  }
  const httpPorts: number[] = [];
  for (let i = 0; i < 2; i++) {
    const server = createHttpServer((_req, res) => {
      res.statusCode = httpStatus[i];
      res.end();
    });
    httpPorts.push(await listen(server));
    cleanups.push(() => server.close());
  }
  for (const flag of flags) writeFileSync(flag, '');
  const entry = (id: string, group: string, ip: string, check: Record<string, unknown>) => ({
    id, group, ip, network: 'default', deployment: 'cf', check: { ...FAST, ...check },
  });
  const instances = [
    entry('t1', 'tcpweb', '10.61.0.1', { tcp: `127.0.0.1:${tcpPorts[0]}` }),
    entry('t2', 'tcpweb', '10.61.0.2', { tcp: `127.0.0.1:${tcpPorts[1]}` }),
    entry('h1', 'httpweb', '10.62.0.1', { http: `http://127.0.0.1:${httpPorts[0]}/health` }),
    entry('h2', 'httpweb', '10.62.0.2', { http: `http://127.0.0.1:${httpPorts[1]}/health` }),
    entry('c1', 'cmdweb', '10.63.0.1', { args: ['test', '-e', flags[0]] }),
    entry('c2', 'cmdweb', '10.63.0.2', { args: ['test', '-e', flags[1]] }),
    // Hangs on every run: each run is killed at its 300 ms timeout.
    entry('k1', 'hangweb', '10.64.0.1', { args: ['sh', '-c', `echo $$ >> ${hangPids}; exec sleep 60`], interval: '500ms', timeout: '300ms' }),
    entry('k2', 'hangweb', '10.64.0.2', { args: ['true'] }),
  ];
  a = await startDaemon({
    config: presenceConfig(database.url, 'cell-a', 5),
    files: { 'instances.d/checked.json': JSON.stringify({ instances }) },
  });
  // SIGTERM: A stops its checks, killing a command in flight.
  cleanups.push(() => a.stop('SIGTERM'));
  b = await startDaemon({ config: presenceConfig(database.url, 'cell-b', 5), files: { 'instances.d/none.json': '{"instances": []}' } });
  cleanups.push(() => b.stop('SIGTERM'));
});

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  if (existsSync(hangPids)) {
    for (const pid of readFileSync(hangPids, 'utf8').trim().split('\n').map(Number)) if (processRunning(pid)) process.kill(pid, 'SIGKILL');
  }
});

describe('local health checks, seen from another node', () => {
  it('every instance whose check passes is running on B', async () => {
    await until(b, 'q-s3', 'tcpweb', ['10.61.0.1', '10.61.0.2']);
    await until(b, 'q-s3', 'httpweb', ['10.62.0.1', '10.62.0.2']);
    await until(b, 'q-s3', 'cmdweb', ['10.63.0.1', '10.63.0.2']);
    expect(await lookup(b, 'q-s1', 'tcpweb')).toEqual([]);
  });

  it('a TCP check whose service stops turns that instance failing on B: q-s3 leaves it out, q-s1 returns only it; back when it listens again', async () => {
    const port = (tcp[0].address() as AddressInfo).port;
    await new Promise((resolve) => tcp[0].close(resolve));
    await until(b, 'q-s3', 'tcpweb', ['10.61.0.2']);
    expect(await lookup(b, 'q-s1', 'tcpweb')).toEqual(['10.61.0.1']);
    expect(await lookup(b, 'q-s0', 'tcpweb')).toEqual(['10.61.0.2']);
    expect(await lookup(b, 'q-s4', 'tcpweb')).toEqual(['10.61.0.1', '10.61.0.2']);
    await listen(tcp[0], port);
    await until(b, 'q-s3', 'tcpweb', ['10.61.0.1', '10.61.0.2']);
    expect(await lookup(b, 'q-s1', 'tcpweb')).toEqual([]);
  });

  it('an HTTP check answered 503 turns that instance failing on B', async () => {
    httpStatus[0] = 503;
    await until(b, 'q-s3', 'httpweb', ['10.62.0.2']);
    expect(await lookup(b, 'q-s1', 'httpweb')).toEqual(['10.62.0.1']);
    expect(await lookup(b, 'q-s0', 'httpweb')).toEqual(['10.62.0.2']);
  });

  it('a command check that exits non-zero turns that instance failing on B', async () => {
    rmSync(flags[0]);
    await until(b, 'q-s3', 'cmdweb', ['10.63.0.2']);
    expect(await lookup(b, 'q-s1', 'cmdweb')).toEqual(['10.63.0.1']);
    expect(await lookup(b, 'q-s0', 'cmdweb')).toEqual(['10.63.0.2']);
  });

  it('a command check that hangs is killed at its timeout: failing on B, and no run outlives its timeout', async () => {
    await until(b, 'q-s1', 'hangweb', ['10.64.0.1']);
    expect(await lookup(b, 'q-s3', 'hangweb')).toEqual(['10.64.0.2']);
    await waitFor(() => existsSync(hangPids) && readFileSync(hangPids, 'utf8').trim().split('\n').length >= 3, CONVERGE_MS, 'three runs of the hanging check');
    // A check never overlaps itself: every run but the latest was killed.
    const pids = readFileSync(hangPids, 'utf8').trim().split('\n').map(Number);
    await waitFor(() => pids.slice(0, -1).every((pid) => !processRunning(pid)), CONVERGE_MS, 'the earlier runs to be gone');
    const states = await (await a.admin('/metrics')).text();
    expect(states).toMatch(/^presence_dns_checks\{state="failing"\} [1-9]/m);
    expect(a.logs.some((line) => line.includes('"health check failing"') && line.includes('timed out after 300 ms; killed'))).toBe(true);
  });
});
