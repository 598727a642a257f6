// End-to-end: the /v1/instances API and the `presence-dns instances` CLI against the real
// daemon (registration set on, route emitter off), with a bearer token on the admin API.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addresses, dig } from '../helpers/dig.ts';
import { DAEMON_ENTRY, startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.ts';
import { topologyJson } from '../helpers/topology.ts';
import { required } from '../helpers/required.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const TOKEN = 'e2e-token';
const auth = { authorization: `Bearer ${TOKEN}` };

const fileInstance = { id: 'file-1', group: 'web', network: 'default', deployment: 'cf', ip: '10.0.0.1', ports: { http: 8080 }, routes: ['web.apps.example.com'] };

function apiEntry(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, group: 'api', network: 'default', deployment: 'cf', ip: '10.0.5.1', az: 'z1', index: 0, ...extra };
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], stdin?: string): Promise<CliResult> {
  return new Promise((done) => {
    const env = { ...process.env };
    delete env.PRESENCE_DNS_ADMIN_TOKEN;
    const child = execFile(process.execPath, [DAEMON_ENTRY, 'instances', ...args], { cwd: ROOT, env }, (err, stdout, stderr) => {
      done({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr });
    });
    if (stdin !== undefined) required(child.stdin, 'the CLI\'s stdin').end(stdin);
  });
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('registrations API and CLI against the daemon', () => {
  let daemon: RunningDaemon;
  const put = (id: string, body: unknown) => daemon.admin(`/v1/instances/${id}`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const get = (path: string) => daemon.admin(path, { headers: auth });
  const del = (id: string) => daemon.admin(`/v1/instances/${id}`, { method: 'DELETE', headers: auth });
  const adminUrl = () => `http://127.0.0.1:${daemon.adminPort}`;

  beforeAll(async () => {
    daemon = await startDaemon({
      config: { registrar: { enabled: true }, routes: { enabled: false }, admin: { token: TOKEN } },
      files: {
        'topology.json': topologyJson([{ id: 'topo-1', ip: '10.9.0.1' }]),
        'instances.d/web.yaml': `instances:\n  - ${JSON.stringify(fileInstance)}\n`,
      },
      waitReady: false,
    });
    await waitFor(async () => (await get('/ready')).status === 200, 15_000, 'daemon ready');
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
  });

  it('lists the file instances with their origin', async () => {
    const res = await get('/v1/instances');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { instances: Array<{ origin: unknown; instance: Record<string, unknown> }> };
    expect(body.instances).toEqual([{
      origin: { kind: 'file', path: join(daemon.dir, 'instances.d/web.yaml') },
      instance: expect.objectContaining({ id: 'file-1', ip: '10.0.0.1', domain: 'bosh', health: 'unchecked', routes: [expect.objectContaining({ hostname: 'web.apps.example.com', port: 8080 })] }),
    }]);
  });

  it('wants the bearer token on every endpoint but /health', async () => {
    for (const path of ['/v1/instances', '/v1/records', '/v1/status', '/v1/cells', '/ready', '/metrics']) {
      const res = await daemon.admin(path);
      expect(res.status, path).toBe(401);
      expect(await res.json()).toEqual({ error: 'missing or wrong bearer token' });
    }
    const wrong = await daemon.admin('/v1/instances/x', { method: 'PUT', headers: { authorization: 'Bearer nope' }, body: JSON.stringify(apiEntry('x')) });
    expect(wrong.status).toBe(401);
    expect((await get('/v1/instances/x')).status).toBe(404);
    expect((await daemon.admin('/health')).status).toBe(200);
  });

  it('PUT good → 200 and GET returns it; DELETE removes it', async () => {
    const res = await put('api-1', apiEntry('api-1', { ports: { http: 80 }, routes: ['API.example.com'] }));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ origin: { kind: 'api' }, instance: { id: 'api-1', routes: [{ hostname: 'api.example.com', port: 80 }] } });
    const got = await get('/v1/instances/api-1');
    expect(got.status).toBe(200);
    expect(await got.json()).toMatchObject({ origin: { kind: 'api' }, instance: { id: 'api-1', ip: '10.0.5.1', group: 'api' } });

    expect((await del('api-1')).status).toBe(200);
    expect((await get('/v1/instances/api-1')).status).toBe(404);
    expect((await del('api-1')).status).toBe(404);
  });

  it('PUT with a bad field → 400 naming the field, and nothing is stored', async () => {
    const before = await (await get('/v1/instances')).json();
    const cases: Array<[unknown, string]> = [
      [apiEntry('bad-1', { ports: { http: 70000 } }), 'ports.http'],
      [apiEntry('bad-1', { ports: { http: 0 } }), 'ports.http'],
      [apiEntry('bad-1', { group: 'web_servers!' }), 'group'],
      [apiEntry('bad-1', { network: 'x'.repeat(64) }), 'network'],
      [apiEntry('bad-1', { ip: '10.0.0.300' }), 'ip'],
      [apiEntry('bad-1', { routes: [{ hostname: 'a.example.com', port: 80, route_service_url: 'http://rs' }] }), 'routes[0].route_service_url'],
      [apiEntry('other-id'), 'id'],
      [apiEntry('bad-1', { colour: 'red' }), 'colour'],
      ['{"id": ', '(body)'],
    ];
    for (const [body, field] of cases) {
      const res = await put('bad-1', body);
      expect(res.status).toBe(400);
      const answer = (await res.json()) as { error: string; field: string };
      expect(answer.field).toBe(field);
      expect(answer.error).toContain(field);
    }
    expect((await get('/v1/instances/bad-1')).status).toBe(404);
    expect(await (await get('/v1/instances')).json()).toEqual(before);
    // A body that is not JSON is refused before validation and is not counted as a bad registration.
    const metrics = await (await get('/metrics')).text();
    expect(metrics).toContain(`presence_dns_registration_errors_total{source="api"} ${cases.length - 1}`);
  });

  it('refuses a body over 1 MiB and stores nothing', async () => {
    const res = await put('big-1', apiEntry('big-1', { tags: { pad: 'x'.repeat(2 * 1024 * 1024) } }));
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ field: '(body)', error: expect.stringContaining('is over the limit of 1048576 bytes') });
    expect((await get('/v1/instances/big-1')).status).toBe(404);
    expect(((await (await get('/v1/instances')).json()) as { instances: Array<{ instance: { id: string } }> }).instances.map((i) => i.instance.id)).toEqual(['file-1']);
  });

  it('refuses to overwrite or delete an instance that a file owns (409)', async () => {
    const overwrite = await put('file-1', { ...fileInstance, ip: '10.0.0.99' });
    expect(overwrite.status).toBe(409);
    expect(await overwrite.json()).toMatchObject({ field: 'id', code: 'REGISTRATION_CONFLICT' });
    const remove = await del('file-1');
    expect(remove.status).toBe(409);
    expect(((await remove.json()) as { error: string }).error).toContain('instances.d/web.yaml; remove it from that file');
    expect(await (await get('/v1/instances/file-1')).json()).toMatchObject({ instance: { ip: '10.0.0.1' } });
  });

  it('rejects a bad file whole: logged at error, counted, shown in /ready, previous instances kept', async () => {
    writeFileSync(join(daemon.dir, 'instances.d/web.yaml'), `instances:\n  - ${JSON.stringify({ ...fileInstance, ip: '10.0.0.2' })}\n  - ${JSON.stringify({ ...fileInstance, id: 'file-2', health: 'great' })}\n`);
    await waitFor(() => daemon.logs.some((l) => l.includes('registration file rejected')), 10_000, 'the rejection log line');
    const line = JSON.parse(required(daemon.logs.find((l) => l.includes('registration file rejected')), 'the rejection log line')) as { level: number; err: string };
    expect(line.level).toBe(50);
    expect(line.err).toBe(`${join(daemon.dir, 'instances.d/web.yaml')}: instances[1] (id file-2): health: must be one of running, failing, unchecked, got "great"`);
    expect(await (await get('/metrics')).text()).toContain('presence_dns_registration_errors_total{source="file"} 1');
    const ready = (await (await get('/ready')).json()) as { ready: boolean; modules: { registrations: { detail: { rejectedFiles: Record<string, string> } } } };
    expect(ready.ready).toBe(true);
    expect(Object.values(ready.modules.registrations.detail.rejectedFiles)).toEqual([line.err]);
    expect(await (await get('/v1/instances/file-1')).json()).toMatchObject({ instance: { ip: '10.0.0.1' } });
    expect((await get('/v1/instances/file-2')).status).toBe(404);
  });

  it('CLI: put a file, list, get, delete; a bad entry sends nothing', async () => {
    const file = join(daemon.dir, 'to-put.yaml');
    writeFileSync(file, `instances:\n  - ${JSON.stringify(apiEntry('cli-1'))}\n  - ${JSON.stringify(apiEntry('cli-2', { ip: '10.0.5.2', index: 1 }))}\n`);
    const flags = ['--admin', adminUrl(), '--token', TOKEN];
    expect(await cli(['put', file, ...flags])).toEqual({ code: 0, stdout: 'registered cli-1\nregistered cli-2\n', stderr: '' });

    const list = await cli(['list', ...flags]);
    expect(list.code).toBe(0);
    const rows = list.stdout.trim().split('\n').map((l) => l.split(/\s+/));
    expect(rows[0]).toEqual(['ID', 'GROUP', 'NETWORK', 'DEPLOYMENT', 'IP', 'HEALTH', 'ORIGIN']);
    expect(rows.slice(1).map((r) => [r[0], r[4], r[6]])).toEqual([['cli-1', '10.0.5.1', 'api'], ['cli-2', '10.0.5.2', 'api'], ['file-1', '10.0.0.1', 'file']]);

    const got = await cli(['get', 'cli-2', ...flags]);
    expect(got.code).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({ origin: { kind: 'api' }, instance: { id: 'cli-2', index: 1 } });

    expect(await cli(['delete', 'cli-2', ...flags])).toEqual({ code: 0, stdout: 'deleted cli-2\n', stderr: '' });
    expect((await get('/v1/instances/cli-2')).status).toBe(404);

    const missing = await cli(['get', 'cli-2', ...flags]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('404: no instance cli-2 is registered on this node');

    const bad = join(daemon.dir, 'bad.yaml');
    writeFileSync(bad, `instances:\n  - ${JSON.stringify(apiEntry('cli-3'))}\n  - ${JSON.stringify(apiEntry('cli-4', { ports: { http: 0 } }))}\n`);
    const rejected = await cli(['put', bad, ...flags]);
    expect(rejected.code).toBe(1);
    expect(rejected.stderr).toContain(`${bad}: instances[1] (id cli-4): ports.http: must be 1-65535, got 0`);
    expect((await get('/v1/instances/cli-3')).status).toBe(404);
  });

  it('CLI: one entry from stdin, admin address and token from --config', async () => {
    const config = join(daemon.dir, 'client.json');
    writeFileSync(config, JSON.stringify({ admin: { address: '127.0.0.1', port: daemon.adminPort, token: TOKEN } }));
    expect(await cli(['put', '-', '--config', config], JSON.stringify(apiEntry('cli-stdin')))).toEqual({ code: 0, stdout: 'registered cli-stdin\n', stderr: '' });
    expect(await (await get('/v1/instances/cli-stdin')).json()).toMatchObject({ origin: { kind: 'api' } });
  });

  it('CLI: a wrong token, an unreachable daemon and bad usage are reported', async () => {
    const denied = await cli(['list', '--admin', adminUrl(), '--token', 'wrong']);
    expect(denied).toMatchObject({ code: 1, stderr: expect.stringContaining('GET /v1/instances: 401: missing or wrong bearer token') });
    const unreachable = await cli(['list', '--admin', `http://127.0.0.1:${await closedPort()}`]);
    expect(unreachable).toMatchObject({ code: 1, stderr: expect.stringContaining('cannot reach the admin API') });
    const usage = await cli(['frobnicate']);
    expect(usage).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown instances command "frobnicate"') });
    expect(await cli(['--help'])).toMatchObject({ code: 0, stdout: expect.stringContaining('presence-dns instances put FILE|-') });
  });
});

describe('API registrations across a restart', () => {
  it('an entry put through the API is still registered after the daemon restarts', async () => {
    const files = { 'topology.json': topologyJson([{ id: 'topo-1', ip: '10.9.0.1' }]) };
    const config = { registrar: { enabled: true }, routes: { enabled: false } };
    const first = await startDaemon({ config, files });
    const res = await first.admin('/v1/instances/keep-1', { method: 'PUT', body: JSON.stringify(apiEntry('keep-1', { health: 'running' })) });
    expect(res.status).toBe(200);
    expect(await first.stop()).toBe(0);

    const second = await startDaemon({ config, dir: first.dir });
    try {
      const got = await second.admin('/v1/instances/keep-1');
      expect(got.status).toBe(200);
      expect(await got.json()).toMatchObject({ origin: { kind: 'api' }, instance: { id: 'keep-1', health: 'running', ip: '10.0.5.1' } });
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });
});

describe('API registrations reach DNS through the presence pipeline (embedded database)', () => {
  it('an instance put through the API is answered by dig, and gone after DELETE', async () => {
    const daemon = await startDaemon({
      config: { registrar: { enabled: true, cell_id: 'cell-e2e' }, sync: { enabled: true, interval: 0.2 }, routes: { enabled: false } },
      waitReady: false,
    });
    try {
      await waitFor(async () => (await daemon.admin('/ready')).status === 200, 30_000, 'daemon ready');
      for (const [id, ip] of [['dns-1', '10.0.7.1'], ['dns-2', '10.0.7.2']]) {
        const res = await daemon.admin(`/v1/instances/${id}`, { method: 'PUT', body: JSON.stringify(apiEntry(id, { ip })) });
        expect(res.status).toBe(200);
      }
      const name = 'dns-1.api.default.cf.bosh.';
      await waitFor(async () => addresses(await dig(daemon.dnsPort, name)).includes('10.0.7.1'), 20_000, `${name} to be answered`);
      expect(addresses(await dig(daemon.dnsPort, 'q-s0.api.default.cf.bosh.'))).toEqual(['10.0.7.1', '10.0.7.2']);

      expect((await daemon.admin('/v1/instances/dns-1', { method: 'DELETE' })).status).toBe(200);
      await waitFor(async () => (await dig(daemon.dnsPort, name)).status === 'NXDOMAIN', 20_000, `${name} to be gone`);
      expect(addresses(await dig(daemon.dnsPort, 'q-s0.api.default.cf.bosh.'))).toEqual(['10.0.7.2']);

      // The last instance under bosh. going away leaves the domain served: NXDOMAIN, never REFUSED.
      expect((await daemon.admin('/v1/instances/dns-2', { method: 'DELETE' })).status).toBe(200);
      await waitFor(async () => (await dig(daemon.dnsPort, 'dns-2.api.default.cf.bosh.')).status === 'NXDOMAIN', 20_000, 'the last instance to be gone');
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  }, 90_000); // a fresh embedded database takes seconds to initialise on a busy machine
});
