// The check runner against real services on loopback — TCP and HTTP servers the test
// owns, real child processes — with a manual clock: each interval passes when the test
// advances it, and the test waits for the runs in flight, never for an interval.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from '../../src/admin/metrics.ts';
import { HealthChecks, MAX_CONCURRENT_CHECKS } from '../../src/checks/index.ts';
import { parseRegistration } from '../../src/registrations/index.ts';
import type { Registration } from '../../src/registrations/types.ts';
import { tempDir, waitFor } from '../helpers/daemon.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { TestSource, silentLogger } from '../presence/fixtures.ts';
import { processRunning } from './processes.ts';

const INTERVAL = 1000;
const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A registration parsed as an instances.d entry with these checks (short intervals, rise/fall 1 unless given). */
function instance(id: string, checks: Array<Record<string, unknown>>, over: Record<string, unknown> = {}): Registration {
  return parseRegistration({
    id, group: 'web', network: 'default', deployment: 'cf', ip: '10.0.0.1', ...over,
    checks: checks.map((c) => ({ interval: INTERVAL / 1000, timeout: 0.5, rise: 1, fall: 1, ...c })),
  }, 'test');
}

function runner(registrations: Registration[]) {
  const clock = new ManualClock({ start: 0 });
  const source = new TestSource();
  source.set(registrations);
  const metrics = new Registry();
  const checks = new HealthChecks({ source, clock, logger: silentLogger, metrics, random: () => 0 });
  const changes: Registration[][] = [];
  checks.on('change', (list) => changes.push(list));
  checks.start();
  cleanups.push(() => checks.stop());
  /** Lets `ms` pass and waits for the runs that fell due. */
  const step = async (ms = INTERVAL) => {
    clock.advance(ms);
    await checks.settled();
  };
  const health = (id: string) => checks.list().find((r) => r.id === id)?.health;
  return { clock, source, metrics, checks, changes, step, health };
}

async function tcpServer(): Promise<{ server: Server; address: string; reopen(): Promise<void> }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  cleanups.push(() => server.close());
  return {
    server,
    address: `127.0.0.1:${port}`,
    reopen: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve)),
  };
}

async function httpServer(): Promise<{ server: HttpServer; url: string; answer: { status: number } }> {
  const answer = { status: 200 };
  const server = createHttpServer((_req, res) => {
    res.statusCode = answer.status;
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`, answer };
}

function closed(server: Server | HttpServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('HealthChecks', () => {
  it('a TCP check: running while the port accepts, failing once it is closed, running again when it reopens', async () => {
    const tcp = await tcpServer();
    const r = runner([instance('t1', [{ tcp: tcp.address }])]);
    expect(r.health('t1')).toBe('unchecked');
    await r.step(0);
    expect(r.health('t1')).toBe('running');
    await closed(tcp.server);
    await r.step();
    expect(r.health('t1')).toBe('failing');
    expect(r.checks.status()[0]).toMatchObject({ instance: 't1', name: `tcp ${tcp.address}`, kind: 'tcp', health: 'failing', detail: 'connect failed: ECONNREFUSED' });
    await tcp.reopen();
    await r.step();
    expect(r.health('t1')).toBe('running');
    expect(r.changes.map((list) => list[0].health)).toEqual(['unchecked', 'running', 'failing', 'running']);
  });

  it('an HTTP check passes on 2xx by default, or on the status it names', async () => {
    const web = await httpServer();
    const r = runner([instance('h1', [{ http: web.url }]), instance('h2', [{ http: web.url, status: 503 }])]);
    await r.step(0);
    expect([r.health('h1'), r.health('h2')]).toEqual(['running', 'failing']);
    web.answer.status = 503;
    await r.step();
    expect([r.health('h1'), r.health('h2')]).toEqual(['failing', 'running']);
    expect(r.checks.status().map((s) => s.detail)).toEqual(['HTTP 503 (want 2xx)', 'HTTP 503']);
    await closed(web.server);
    await r.step();
    expect(r.checks.status().map((s) => s.detail)).toEqual(['request failed: ECONNREFUSED', 'request failed: ECONNREFUSED']);
    expect([r.health('h1'), r.health('h2')]).toEqual(['failing', 'failing']);
  });

  it('a command check passes on exit 0 and reports the exit code and first line of output otherwise', async () => {
    const flag = join(tempDir('checks-'), 'up');
    writeFileSync(flag, '');
    const r = runner([instance('c1', [{ args: ['sh', '-c', `test -e ${flag} || { echo "no flag file"; exit 3; }`] }]), instance('c2', [{ args: ['no-such-command-here'] }])]);
    await r.step(0);
    expect([r.health('c1'), r.health('c2')]).toEqual(['running', 'failing']);
    expect(r.checks.status()[1].detail).toMatch(/^cannot run no-such-command-here \(exit 127\): .*No such file or directory$/);
    rmSync(flag);
    await r.step();
    expect(r.health('c1')).toBe('failing');
    expect(r.checks.status()[0].detail).toBe('exit 3: no flag file');
  });

  it('commands are started by a helper shell, not forked from the daemon (whose main thread answers DNS)', async () => {
    const parents = join(tempDir('checks-'), 'parents');
    const r = runner([instance('p1', [{ args: ['sh', '-c', `echo $PPID >> ${parents}`] }])]);
    await r.step(0);
    await r.step();
    const ppids = readFileSync(parents, 'utf8').trim().split('\n').map(Number);
    expect(ppids).toHaveLength(2);
    expect(ppids).not.toContain(process.pid);
    expect(r.health('p1')).toBe('running');
  });

  it('a command that hangs is killed at its timeout, with the processes it started', async () => {
    const pids = join(tempDir('checks-'), 'pids');
    const r = runner([instance('k1', [{ args: ['sh', '-c', `sleep 60 & echo $$ $! > ${pids}; wait`], timeout: 0.5 }])]);
    r.clock.advance(0);
    await waitFor(() => existsSync(pids) && readFileSync(pids, 'utf8').includes('\n'), 10_000, 'the check command to start');
    const [shell, sleeper] = readFileSync(pids, 'utf8').trim().split(' ').map(Number);
    expect(processRunning(shell) && processRunning(sleeper)).toBe(true);
    // Just short of the timeout: still running.
    r.clock.advance(499);
    expect(r.checks.status()[0].detail).toBeNull();
    expect(processRunning(sleeper)).toBe(true);
    await r.step(1);
    expect(r.health('k1')).toBe('failing');
    expect(r.checks.status()[0].detail).toBe('timed out after 500 ms; killed (SIGKILL to its process group)');
    await waitFor(() => !processRunning(shell) && !processRunning(sleeper), 10_000, 'the command and its child to be gone');
  });

  it('a command that exits but leaves a process holding its output is killed at the timeout too, leaving nothing behind', async () => {
    const pids = join(tempDir('checks-'), 'pids');
    const r = runner([instance('k2', [{ args: ['sh', '-c', `sleep 60 & echo $! > ${pids}`], timeout: 0.5 }])]);
    r.clock.advance(0);
    await waitFor(() => existsSync(pids) && readFileSync(pids, 'utf8').includes('\n'), 10_000, 'the check command to start');
    const sleeper = Number(readFileSync(pids, 'utf8'));
    await r.step(500);
    expect(r.health('k2')).toBe('failing');
    expect(r.checks.status()[0].detail).toMatch(/^timed out after 500 ms; killed/);
    await waitFor(() => !processRunning(sleeper), 10_000, 'the left-behind process to be gone');
  });

  it('a registration\'s health holds until the checks have results (no flap to unchecked after a restart)', async () => {
    const tcp = await tcpServer();
    await closed(tcp.server);
    const r = runner([instance('r1', [{ tcp: tcp.address }], { health: 'running' })]);
    expect(r.health('r1')).toBe('running');
    await r.step(0);
    expect(r.health('r1')).toBe('failing');
  });

  it('an instance with several checks is running only when all pass', async () => {
    const tcp = await tcpServer();
    const web = await httpServer();
    const r = runner([instance('m1', [{ tcp: tcp.address }, { http: web.url }])]);
    await r.step(0);
    expect(r.health('m1')).toBe('running');
    web.answer.status = 500;
    await r.step();
    expect(r.health('m1')).toBe('failing');
    expect(r.checks.status().map((s) => s.health)).toEqual(['running', 'failing']);
  });

  it('results that change no state hand nothing to the registrar: no change event, so no database write', async () => {
    const tcp = await tcpServer();
    const r = runner([instance('t1', [{ tcp: tcp.address }])]);
    await r.step(0);
    const afterFirst = r.changes.length;
    for (let i = 0; i < 20; i++) await r.step();
    expect(r.changes.length).toBe(afterFirst);
    expect(await r.metrics.value('presence_dns_check_runs_total', { kind: 'tcp', result: 'passed' })).toBe(21);
    expect(await r.metrics.value('presence_dns_check_health_changes_total')).toBe(1);
  });

  it('a flapping check is held by rise/fall: 20 alternating results, not one change', async () => {
    const flag = join(tempDir('checks-'), 'up');
    writeFileSync(flag, '');
    const r = runner([instance('f1', [{ args: ['test', '-e', flag], rise: 3, fall: 3 }])]);
    await r.step(0);
    expect(r.health('f1')).toBe('running');
    const afterFirst = r.changes.length;
    for (let i = 0; i < 20; i++) {
      if (i % 2 === 0) rmSync(flag);
      else writeFileSync(flag, '');
      await r.step();
    }
    expect(r.changes.length).toBe(afterFirst);
    expect(await r.metrics.value('presence_dns_check_runs_total', { kind: 'args', result: 'failed' })).toBe(10);
    rmSync(flag, { force: true });
    for (let i = 0; i < 3; i++) await r.step();
    expect(r.health('f1')).toBe('failing');
    expect(r.changes.length).toBe(afterFirst + 1);
  });

  it(`runs at most ${MAX_CONCURRENT_CHECKS} checks at once; the others wait their turn`, async () => {
    const dir = tempDir('checks-');
    const started = join(dir, 'started');
    const go = join(dir, 'go');
    const blocking = ['sh', '-c', `echo x >> ${started}; while [ ! -e ${go} ]; do sleep 0.02; done`];
    const r = runner(Array.from({ length: 10 }, (_, i) => instance(`q${i}`, [{ args: blocking, timeout: 1 }])));
    r.clock.advance(0);
    expect(await r.metrics.value('presence_dns_check_queue')).toBe(10 - MAX_CONCURRENT_CHECKS);
    await waitFor(() => existsSync(started) && readFileSync(started, 'utf8').length === 2 * MAX_CONCURRENT_CHECKS, 10_000, 'the first checks to start');
    writeFileSync(go, '');
    await r.checks.settled();
    expect(readFileSync(started, 'utf8').length).toBe(2 * 10);
    expect(r.checks.list().every((reg) => reg.health === 'running')).toBe(true);
    expect(await r.metrics.value('presence_dns_checks', { state: 'running' })).toBe(10);
  });

  it('a registration change keeps the state of checks that stay and stops those of removed instances', async () => {
    const tcp = await tcpServer();
    const kept = instance('t1', [{ tcp: tcp.address }]);
    const r = runner([kept, instance('t2', [{ tcp: tcp.address }])]);
    await r.step(0);
    r.source.set([kept, instance('plain', [])]);
    expect(r.health('t1')).toBe('running');
    expect(r.health('plain')).toBe('unchecked');
    expect(r.checks.status().map((s) => s.instance)).toEqual(['t1']);
    const runs = () => r.metrics.value('presence_dns_check_runs_total', { kind: 'tcp', result: 'passed' });
    expect(await runs()).toBe(2);
    await r.step();
    expect(await runs()).toBe(3);
  });

  it('stop kills a command in flight at once', async () => {
    const pids = join(tempDir('checks-'), 'pids');
    const r = runner([instance('k1', [{ args: ['sh', '-c', `echo $$ > ${pids}; exec sleep 60`], timeout: 1 }])]);
    r.clock.advance(0);
    await waitFor(() => existsSync(pids) && readFileSync(pids, 'utf8').includes('\n'), 10_000, 'the check command to start');
    await r.checks.stop();
    await waitFor(() => !processRunning(Number(readFileSync(pids, 'utf8'))), 10_000, 'the command to be gone');
  });
});
