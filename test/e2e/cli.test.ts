// The command line as an operator uses it: validate-config, a bad config at start
// (exit 2 naming the key), the shipped example topology, SIGTERM (exit 0, silent), and
// every client subcommand against a running daemon on a real PostgreSQL, in human and
// --json form, with --help on each and exit codes 0 (ok), 1 (failed, not found), 2 (usage).
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addresses, dig } from '../helpers/dig.ts';
import { startDaemon, tempDir, waitFor, type RunningDaemon } from '../helpers/daemon.ts';
import { testDatabase, type TestDatabase } from '../helpers/postgres.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

interface Exit {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Exit> {
  try {
    const base = { ...process.env };
    delete base.PRESENCE_DNS_ADMIN_TOKEN;
    const { stdout, stderr } = await run(command, args, { cwd: ROOT, timeout: 30_000, env: { ...base, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const bin = (...args: string[]) => cli(process.execPath, [join(ROOT, 'bin/presence-dns.js'), ...args]);
const binWithEnv = (env: NodeJS.ProcessEnv, ...args: string[]) => cli(process.execPath, [join(ROOT, 'bin/presence-dns.js'), ...args], env);

function configFile(text: string): string {
  const path = join(tempDir(), 'presence.yaml');
  writeFileSync(path, text);
  return path;
}

describe.concurrent('presence-dns validate-config', () => {
  it('exits 0 on the shipped default config', async () => {
    const r = await bin('validate-config', join(ROOT, 'config/default.yaml'));
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toContain('default.yaml: configuration is valid');
  });

  it('exits 0 on the container config', async () => {
    expect((await bin('validate-config', join(ROOT, 'config/container.yaml'))).code).toBe(0);
  });

  it('exits 2 naming the key on a bad file', async () => {
    const r = await bin('validate-config', configFile('dns:\n  ttl: soon\nadmin:\n  prot: 1\n'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('dns.ttl:');
    expect(r.stderr).toContain('admin.prot: unknown key');
  });

  it('exits 2 without a file, and on an unknown command or flag', async () => {
    const [noFile, command, flag] = await Promise.all([bin('validate-config'), bin('frobnicate'), bin('start', '--nope')]);
    expect(noFile).toMatchObject({ code: 2 });
    expect(noFile.stderr).toContain('validate-config needs a FILE');
    expect(command).toMatchObject({ code: 2 });
    expect(command.stderr).toContain('unknown command "frobnicate"');
    expect(flag).toMatchObject({ code: 2 });
    expect(flag.stderr).toContain('unknown flag "--nope"');
  });

  it('prints usage with --help', async () => {
    const r = await bin('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('presence-dns validate-config FILE');
  });
});

describe.concurrent('starting with a bad config', () => {
  it('npm start exits 2 naming the key', async () => {
    const r = await cli('npm', ['start', '--silent', '--', '--config', configFile('dns:\n  listen: 5353\n')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('dns.listen:');
  });

  it('a bad PRESENCE_DNS_* value exits 2 naming the variable', async () => {
    const r = await cli(process.execPath, [join(ROOT, 'bin/presence-dns.js'), 'start'], { PRESENCE_DNS_DNS_TLL: '1' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('PRESENCE_DNS_DNS_TLL does not name a config key');
  });
});

describe('the running daemon', () => {
  it('serves the example topology shipped in config/', async () => {
    const daemon = await startDaemon({
      config: { topology: { file: join(ROOT, 'config/topology.json') }, dns: { aliases_dir: join(ROOT, 'config/aliases.d') } },
    });
    try {
      expect(addresses(await dig(daemon.dnsPort, 'q-s0.web.default.cf.bosh.'))).toEqual(['10.0.1.10', '10.0.2.10']);
      expect(addresses(await dig(daemon.dnsPort, 'web.service.internal.'))).toEqual(['10.0.1.10', '10.0.2.10']);
    } finally {
      await daemon.stop();
    }
  });

  it('exits 0 on SIGTERM and stops answering', async () => {
    const daemon = await startDaemon({ files: { 'topology.json': JSON.stringify({ record_keys: ['id', 'instance_group', 'network', 'deployment', 'ip', 'domain'], record_infos: [['a', 'web', 'default', 'cf', '10.0.0.1', 'bosh.']] }) } });
    expect(addresses(await dig(daemon.dnsPort, 'a.web.default.cf.bosh.'))).toEqual(['10.0.0.1']);
    expect(await daemon.stop('SIGTERM')).toBe(0);
    expect(daemon.logs.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
    const after = await dig(daemon.dnsPort, 'a.web.default.cf.bosh.', 'A', ['+time=1']);
    expect(after.status).toBe('');
    expect(after.answer).toEqual([]);
    const tcp = await dig(daemon.dnsPort, 'a.web.default.cf.bosh.', 'A', ['+tcp', '+time=1']);
    expect(tcp.status).toBe('');
    await expect(daemon.admin('/health')).rejects.toThrow();
  });
});

describe('every client subcommand against a running daemon', () => {
  const TOKEN = 'cli-token';
  let database: TestDatabase;
  let daemon: RunningDaemon;
  /** What the setup started, stopped in reverse: only what it got to start if it failed halfway. */
  const cleanups: Array<() => Promise<unknown>> = [];
  const web = (id: string, ip: string, index: number) => ({ id, group: 'web', network: 'default', deployment: 'cf', ip, index, health: 'running', ports: { http: 8080 } });
  // The admin API through the environment, as an operator's shell would hold it.
  const client = (...args: string[]) => binWithEnv({ PRESENCE_DNS_ADMIN_TOKEN: TOKEN }, ...args, '--admin', `http://127.0.0.1:${daemon.adminPort}`);
  const json = (r: Exit) => JSON.parse(r.stdout) as Record<string, unknown>;

  beforeAll(async () => {
    database = await testDatabase();
    cleanups.push(() => database.drop());
    daemon = await startDaemon({
      config: {
        database: { url: database.url }, registrar: { enabled: true, cell_id: 'cli-cell', ttl: 3 }, sync: { enabled: true, interval: 0.2 },
        reaper: { enabled: true }, routes: { enabled: false }, admin: { token: TOKEN },
      },
      files: { 'instances.d/web.yaml': `instances:\n  - ${JSON.stringify(web('w1', '10.0.8.1', 0))}\n` },
      waitReady: false,
    });
    cleanups.push(async () => expect(await daemon.stop()).toBe(0));
    await waitFor(async () => addresses(await dig(daemon.dnsPort, 'w1.web.default.cf.bosh.')).length === 1, 20_000, 'the file instance to be answered');
  }, 60_000);
  afterAll(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('register and deregister, in text and JSON', async () => {
    const file = join(daemon.dir, 'more.yaml');
    writeFileSync(file, `instances:\n  - ${JSON.stringify(web('w2', '10.0.8.2', 1))}\n`);
    expect(await client('register', file)).toEqual({ code: 0, stdout: 'registered w2\n', stderr: '' });
    const asJson = await client('register', '--json', file);
    expect(asJson.code).toBe(0);
    expect(json(asJson)).toEqual({ registered: ['w2'] });
    await waitFor(async () => addresses(await dig(daemon.dnsPort, 'q-s0.web.default.cf.bosh.')).length === 2, 10_000, 'w2 to be answered');

    expect(await client('deregister', 'w2')).toEqual({ code: 0, stdout: 'deregistered w2\n', stderr: '' });
    const again = await client('deregister', 'w2', '--json');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('404: no instance w2 is registered on this node');
    await waitFor(async () => (await dig(daemon.dnsPort, 'w2.web.default.cf.bosh.')).status === 'NXDOMAIN', 10_000, 'w2 to be gone');

    writeFileSync(file, `instances:\n  - ${JSON.stringify(web('w3', '10.0.8.3', 3))}\n  - ${JSON.stringify({ ...web('w4', '10.0.8.4', 4), ip: '10.0.8.300' })}\n`);
    const bad = await client('register', file);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('instances[1] (id w4): ip:');
    expect(json(await client('instances', 'list', '--json')).instances).toEqual([expect.objectContaining({ instance: expect.objectContaining({ id: 'w1' }) })]);
    expect((await client('instances', 'list')).stdout).toMatch(/^ID\s+GROUP.*\nw1\s+web\s+default\s+cf\s+10\.0\.8\.1\s+running\s+file /);
  });

  it('records: what DNS answers from, filtered', async () => {
    const text = await client('records', '--group', 'web');
    expect(text.code).toBe(0);
    expect(text.stdout.trim().split('\n').map((l) => l.split(/\s+/))).toEqual([['NAME', 'IP', 'HEALTH', 'CELL'], ['w1.web.default.cf.bosh', '10.0.8.1', 'running', 'cli-cell']]);
    const asJson = json(await client('records', '--json', '--health', 'running'));
    expect(asJson).toMatchObject({ matched: 1, truncated: false, records: [{ name: 'w1.web.default.cf.bosh', ip: '10.0.8.1', cell: 'cli-cell' }] });
    expect(json(await client('records', '--json', '--group', 'nope')).records).toEqual([]);
    const bad = await client('records', '--health', 'great');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('400: health: must be one of running, failing, unchecked, got "great"');
  });

  it('status: revision, staleness, database, reaper lock, this cell', async () => {
    const text = await client('status');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^cell\s+cli-cell$/m);
    expect(text.stdout).toMatch(/^revision\s+\d+ \(1 records\)$/m);
    expect(text.stdout).toMatch(/^database\s+server, up$/m);
    expect(text.stdout).toMatch(/^routes\s+off$/m);
    expect(text.stdout).toMatch(/^checks\s+none$/m);
    const asJson = json(await client('status', '--json'));
    expect(asJson).toMatchObject({ cell: 'cli-cell', records: 1, dbUp: true, database: 'server', checks: [], routes: null });
    expect(typeof asJson.revision).toBe('number');
    expect(asJson.staleSeconds).toBeGreaterThanOrEqual(0);
    await waitFor(async () => json(await client('status', '--json')).reaperLockHolder === true, 10_000, 'the reaper lock');
  });

  it('cells: this cell with its heartbeat age and the reaper', async () => {
    await waitFor(async () => (json(await client('cells', '--json')).cells as Array<{ reaperHolder: boolean }>)[0]?.reaperHolder, 10_000, 'the reaper holder in the listing');
    const asJson = json(await client('cells', '--json'));
    expect(asJson.cells).toEqual([expect.objectContaining({ cellId: 'cli-cell', state: 'alive', self: true, instances: 1, ttlSeconds: 3, reaperHolder: true })]);
    const text = await client('cells');
    expect(text.code).toBe(0);
    const rows = text.stdout.trim().split('\n');
    expect(rows[0].split(/\s{2,}/)).toEqual(['CELL', 'ADDRESS', 'STATE', 'HEARTBEAT', 'INSTANCES', 'NOTES']);
    expect(rows[1]).toMatch(/^cli-cell\s+-\s+alive\s+\d+\.\ds ago\s+1\s+this node, reaper$/);
  });

  it('lookup: answers one per line like dig +short; exit 1 without', async () => {
    const server = ['--server', `127.0.0.1:${daemon.dnsPort}`];
    expect(await bin('lookup', 'w1.web.default.cf.bosh', ...server)).toEqual({ code: 0, stdout: '10.0.8.1\n', stderr: '' });
    const srv = await bin('lookup', '_http._tcp.web.default.cf.bosh', 'SRV', ...server);
    const digSrv = await dig(daemon.dnsPort, '_http._tcp.web.default.cf.bosh', 'SRV');
    expect(digSrv.answer).toHaveLength(1);
    expect(srv).toMatchObject({ code: 0, stdout: `${digSrv.answer[0].data}\n` });
    expect(srv.stdout).toMatch(/ 8080 \S+\.\n$/);
    const asJson = await bin('lookup', 'w1.web.default.cf.bosh', 'A', '--json', ...server);
    expect(json(asJson)).toEqual({ name: 'w1.web.default.cf.bosh.', type: 'A', rcode: 'NOERROR', answers: [{ name: 'w1.web.default.cf.bosh.', type: 'A', ttl: expect.any(Number), data: '10.0.8.1' }] });
    const missing = await bin('lookup', 'nope.web.default.cf.bosh', ...server);
    expect(missing).toMatchObject({ code: 1, stdout: '', stderr: expect.stringContaining('nope.web.default.cf.bosh. A: NXDOMAIN') });
    expect(json(await bin('lookup', 'nope.web.default.cf.bosh', '--json', ...server))).toMatchObject({ rcode: 'NXDOMAIN', answers: [] });
    // The daemon's DNS address from its config file.
    const clientConfig = join(daemon.dir, 'client.yaml');
    writeFileSync(clientConfig, `dns:\n  listen: [{ address: 0.0.0.0, port: ${daemon.dnsPort} }]\n`);
    expect(await bin('lookup', 'w1.web.default.cf.bosh', '--config', clientConfig)).toMatchObject({ code: 0, stdout: '10.0.8.1\n' });
    expect(await bin('lookup', 'w1.web.default.cf.bosh', '--server', 'nowhere:53')).toMatchObject({ code: 2, stderr: expect.stringContaining('--server: "nowhere:53" is not an IP address') });
  });

  it('validate-config in text and JSON', async () => {
    const config = join(ROOT, 'config/default.yaml');
    expect(json(await bin('validate-config', config, '--json'))).toEqual({ file: config, valid: true });
    expect((await bin('validate-config', config, '--set', 'dns.ttl=soon')).code).toBe(2);
  });

  it('--help on every subcommand; usage errors exit 2; a wrong token exits 1', async () => {
    for (const command of ['start', 'validate-config', 'register', 'deregister', 'instances', 'records', 'status', 'cells', 'lookup']) {
      const help = await bin(command, '--help');
      expect(help.code, command).toBe(0);
      expect(help.stdout, command).toContain(command === 'start' ? 'presence-dns [start]' : `presence-dns ${command}`);
    }
    expect(await bin('status', 'extra')).toMatchObject({ code: 2, stderr: expect.stringContaining('unexpected argument "extra"') });
    expect(await bin('deregister')).toMatchObject({ code: 2, stderr: expect.stringContaining('deregister needs an ID') });
    expect(await bin('lookup')).toMatchObject({ code: 2, stderr: expect.stringContaining('lookup needs a NAME') });
    const denied = await bin('status', '--admin', `http://127.0.0.1:${daemon.adminPort}`, '--token', 'wrong');
    expect(denied).toMatchObject({ code: 1, stderr: expect.stringContaining('GET /v1/status: 401: missing or wrong bearer token') });
  });
});
