// End-to-end: the daemon's route emitter, fed by real registration files, publishing to
// a real nats-server where a test client plays gorouter (its greet reply asks for a 1 s
// interval so "every interval" is observable in seconds).
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.ts';
import { playGorouter, startNats, type Gorouter, type NatsServer } from '../helpers/nats.ts';
import { ownPostgres } from '../helpers/postgres.ts';
import { topologyJson } from '../helpers/topology.ts';
import { required } from '../helpers/required.ts';

const WEB_YAML = `instances:
  - id: 6f1c2d3e-0000-4000-8000-000000000001
    group: web
    network: default
    deployment: cf
    az: z1
    index: 0
    ip: 10.0.1.10
    ports: { http: 8080 }
    app: app-guid-web
    tags: { space: dev }
    routes:
      - Web.Apps.Example.com
      - { hostname: admin.example.com, port: 9090, tls_port: 9443, route_service_url: "https://rs.example.com/x" }
`;
const API_YAML = `instances:
  - id: 6f1c2d3e-0000-4000-8000-000000000002
    group: api
    network: default
    deployment: cf
    index: 1
    ip: 10.0.1.11
    ports: { http: 8081 }
    routes: [api.apps.example.com]
`;
const BAD_YAML = `instances:
  - id: 6f1c2d3e-0000-4000-8000-000000000009
    group: bad
    network: default
    deployment: cf
    ip: 10.0.1.19
    ports: { http: 8080 }
    routes:
      - { hostname: big.example.com, port: 70000 }
      - { hostname: plain.example.com, route_service_url: "http://rs.example.com" }
`;

const uri = (m: { body: Record<string, unknown> }) => (m.body.uris as string[])[0];
const registeredUris = (g: Gorouter) => [...new Set(g.registers().map(uri))].sort();

// NATS_URL when set (a server for this test run only: router.* subjects are broadcast,
// so other emitters or routers on it would mix in); the restart test starts its own.
let nats: NatsServer;
beforeAll(async () => {
  nats = await startNats();
  return () => nats.stop();
});

function daemonWith(files: Record<string, string>, config: Record<string, unknown> = {}, url = nats.url): Promise<RunningDaemon> {
  return startDaemon({
    config: { routes: { nats_url: url }, registrations: { dir: 'instances.d' }, ...config },
    files: { 'topology.json': topologyJson([{ id: 'topo-1', ip: '10.9.0.1' }]), ...files },
  });
}

describe('route emitter in the daemon', () => {
  let gorouter: Gorouter;
  let daemon: RunningDaemon;
  /** What the setup started, stopped in reverse: only what it got to start if it failed halfway. */
  const cleanups: Array<() => Promise<unknown>> = [];
  beforeAll(async () => {
    gorouter = await playGorouter(nats.url, { greetInterval: 1 });
    cleanups.push(() => gorouter.close());
    daemon = await daemonWith({ 'instances.d/web.yaml': WEB_YAML, 'instances.d/api.yaml': API_YAML });
    cleanups.push(() => daemon.stop());
  });
  afterAll(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('registers one message per (instance, hostname) with the exact fields, and again every interval', async () => {
    await gorouter.until((g) => registeredUris(g).length === 3, 'registers of all three routes');
    const first = required(gorouter.registers().find((m) => uri(m) === 'admin.example.com'), 'the register of admin.example.com');
    const ns = required(/"endpoint_updated_at_ns":(\d+)/.exec(first.raw), 'endpoint_updated_at_ns in the first register')[1];
    expect(Math.abs(Number(BigInt(ns) / 1_000_000n) - Date.now())).toBeLessThan(60_000);
    expect(first.body).toEqual({
      host: '10.0.1.10', port: 9090, tls_port: 9443, uris: ['admin.example.com'], app: 'app-guid-web',
      private_instance_id: '6f1c2d3e-0000-4000-8000-000000000001', private_instance_index: '0', availability_zone: 'z1',
      route_service_url: 'https://rs.example.com/x', tags: { space: 'dev', component: 'route-emitter' },
      endpoint_updated_at_ns: Number(ns),
    });
    expect(required(gorouter.registers().find((m) => uri(m) === 'api.apps.example.com'), 'the register of api.apps.example.com').body).toMatchObject({
      host: '10.0.1.11', port: 8081, uris: ['api.apps.example.com'], private_instance_index: '1',
    });
    // The greet reply asked for 1 s: two more full rounds arrive, without the update time.
    gorouter.clear();
    await gorouter.until((g) => g.registers().length >= 6, 'two more rounds of registers', 5000);
    expect(registeredUris(gorouter)).toEqual(['admin.example.com', 'api.apps.example.com', 'web.apps.example.com']);
    expect(gorouter.registers().some((m) => m.raw.includes('endpoint_updated_at_ns'))).toBe(false);
  });

  it('rejects bad route data with a clear message; the good routes keep flowing', async () => {
    writeFileSync(join(daemon.dir, 'instances.d/bad.yaml'), BAD_YAML);
    await waitFor(() => daemon.logs.some((l) => l.includes('bad.yaml') && l.includes('registration file rejected')), 10_000, 'rejection logged');
    const rejection = required(daemon.logs.find((l) => l.includes('bad.yaml') && l.includes('registration file rejected')), 'the rejection log line');
    expect(rejection).toMatch(/routes\[0\]\.port/);
    expect(rejection).toMatch(/65535/);
    // A broken edit of a good file: its previous version stays, and so do its routes.
    writeFileSync(join(daemon.dir, 'instances.d/api.yaml'), API_YAML.replace('routes: [api.apps.example.com]', 'routes: [{ hostname: api.apps.example.com, route_service_url: "http://rs.example.com" }]'));
    await waitFor(() => daemon.logs.some((l) => l.includes('api.yaml') && l.includes('route_service_url') && l.includes('https://')), 10_000, 'route_service_url rejection logged');
    gorouter.clear();
    await gorouter.until((g) => g.registers().length >= 6, 'two rounds of registers', 5000);
    expect(registeredUris(gorouter)).toEqual(['admin.example.com', 'api.apps.example.com', 'web.apps.example.com']);
    expect(gorouter.unregisters()).toEqual([]);
    writeFileSync(join(daemon.dir, 'instances.d/api.yaml'), API_YAML);
    rmSync(join(daemon.dir, 'instances.d/bad.yaml'));
  });

  it('unregisters a removed instance with the body it was registered with', async () => {
    await gorouter.until((g) => registeredUris(g).includes('api.apps.example.com'), 'api registered');
    const registered = required(gorouter.registers().filter((m) => uri(m) === 'api.apps.example.com').at(-1), 'a register of api.apps.example.com').body;
    gorouter.clear();
    rmSync(join(daemon.dir, 'instances.d/api.yaml'));
    await gorouter.until((g) => g.unregisters().length >= 1, 'unregister of the removed instance');
    // The body registered, without endpoint_updated_at_ns (toEqual takes a key set to undefined as absent).
    expect(gorouter.unregisters()[0].body).toEqual({ ...registered, endpoint_updated_at_ns: undefined });
    gorouter.clear();
    await gorouter.until((g) => g.registers().length >= 4, 'two rounds of registers', 5000);
    expect(registeredUris(gorouter)).toEqual(['admin.example.com', 'web.apps.example.com']);
    const metrics = await (await daemon.admin('/metrics')).text();
    expect(metrics).toMatch(/^presence_dns_routes_total 2$/m);
    expect(metrics).toMatch(/^presence_dns_routes_unregistered_total 1$/m);
    expect(metrics).toMatch(/^presence_dns_route_messages_emitted_total\{subject="router.register"\} \d+$/m);
    expect(metrics).toMatch(/^presence_dns_route_emit_duration_seconds_count \d+$/m);
    expect(metrics).toMatch(/^presence_dns_routes_nats_connected 1$/m);
  });

  it('SIGTERM unregisters this node’s routes before the process exits', async () => {
    gorouter.clear();
    expect(await daemon.stop('SIGTERM')).toBe(0);
    await gorouter.until((g) => g.unregisters().length === 2, 'unregisters at shutdown');
    expect(gorouter.unregisters().map(uri).sort()).toEqual(['admin.example.com', 'web.apps.example.com']);
  });
});

describe('route emitter when other things break', () => {
  it('database stopped: registers keep arriving every interval and nothing is unregistered', async () => {
    const database = await ownPostgres();
    const gorouter = await playGorouter(nats.url, { greetInterval: 1 });
    const daemon = await daemonWith({ 'instances.d/web.yaml': WEB_YAML }, {
      database: { url: database.url },
      // The whole database side of a node: registrar (heartbeat every ttl/3 = 1 s), syncer, reaper.
      registrar: { enabled: true, cell_id: 'routes-cell', ttl: 3 },
      sync: { enabled: true, interval: 0.5 },
      reaper: { enabled: true },
    });
    try {
      await waitFor(() => daemon.logs.some((l) => l.includes('instances written')), 15_000, 'registrar writes to the database');
      await gorouter.until((g) => registeredUris(g).length === 2, 'first registers');
      await database.pause();
      await waitFor(() => daemon.logs.some((l) => l.includes('registrar database operation failed')), 10_000, 'registrar sees the database gone');
      gorouter.clear();
      await gorouter.until((g) => g.registers().length >= 6, 'three more rounds of registers', 6000);
      expect(registeredUris(gorouter)).toEqual(['admin.example.com', 'web.apps.example.com']);
      expect(gorouter.unregisters()).toEqual([]);
    } finally {
      await daemon.stop();
      await gorouter.close();
      await database.drop();
    }
  });

  it('daemon started with the database unreachable: routes are registered and re-sent all the same', async () => {
    const gorouter = await playGorouter(nats.url, { greetInterval: 1 });
    const daemon = await daemonWith({ 'instances.d/web.yaml': WEB_YAML }, {
      database: { url: 'postgres://127.0.0.1:1/none' },
      registrar: { enabled: true },
    });
    try {
      await gorouter.until((g) => registeredUris(g).length === 2, 'first registers');
      gorouter.clear();
      await gorouter.until((g) => g.registers().length >= 4, 'two more rounds of registers', 5000);
      expect(registeredUris(gorouter)).toEqual(['admin.example.com', 'web.apps.example.com']);
      expect(gorouter.unregisters()).toEqual([]);
    } finally {
      await daemon.stop();
      await gorouter.close();
    }
  });

  it('NATS restarted: every route is re-published on reconnect, long before the interval', async () => {
    const own = await startNats({ own: true });
    // A one-hour interval: only the reconnect can explain registers after the restart.
    const gorouter = await playGorouter(own.url, { greetInterval: 3600 });
    const daemon = await daemonWith({ 'instances.d/web.yaml': WEB_YAML, 'instances.d/api.yaml': API_YAML }, {}, own.url);
    try {
      await gorouter.until((g) => registeredUris(g).length === 3, 'first registers');
      await waitFor(() => daemon.logs.some((l) => l.includes('a router answered router.greet')), 20_000, 'greet answered');
      gorouter.clear();
      await own.kill();
      await waitFor(() => daemon.logs.some((l) => l.includes('disconnected from NATS')), 20_000, 'daemon notices the outage');
      expect(await (await daemon.admin('/metrics')).text()).toMatch(/^presence_dns_routes_nats_connected 0$/m);
      await own.restart();
      await gorouter.until((g) => registeredUris(g).length === 3, 're-published routes after reconnect', 10_000);
      expect(gorouter.unregisters()).toEqual([]);
    } finally {
      await daemon.stop();
      await gorouter.close();
      await own.stop();
    }
  });
});
