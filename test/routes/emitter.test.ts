// The route emitter against a real nats-server, with a NATS client playing gorouter.
// Time is a ManualClock, so "every 20 s" is checked without waiting 20 s.
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from '../../src/admin/index.ts';
import { createLogger } from '../../src/log.ts';
import { RouteEmitter } from '../../src/routes/emitter.ts';
import { NatsBus } from '../../src/routes/nats-bus.ts';
import { waitFor } from '../helpers/daemon.ts';
import { required } from '../helpers/required.ts';
import { makeTlsFiles, playGorouter, startNats, type Gorouter, type NatsServer } from '../helpers/nats.ts';
import { registration, route, TestSource } from './fixtures.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

const WALL_MS = 1_763_708_255_123;
const UPDATED_AT = '"endpoint_updated_at_ns":1763708255123000000';
const logger = createLogger('silent');

const web = registration({
  id: 'inst-web-0', ip: '10.0.1.10', index: 0, az: 'z1', app: 'app-web', tags: { space: 'dev' },
  routes: [route('web.apps.example.com'), route('admin.example.com', { port: 9090, tlsPort: 9443 })],
});
const api = registration({ id: 'inst-api-1', ip: '10.0.1.11', index: 1, routes: [route('api.apps.example.com', { port: 8081 })] });

interface Harness {
  clock: ManualClock;
  source: TestSource;
  bus: NatsBus;
  emitter: RouteEmitter;
  metrics: Registry;
  /** Everything published so far has reached the gorouter client. */
  settle(): Promise<void>;
}

let server: NatsServer;
let gorouter: Gorouter;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  server = await startNats({ own: true });
});
afterAll(async () => {
  await server.stop();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function harness(options: { url?: string; registrations?: Array<typeof web>; answerGreet?: boolean; greetInterval?: number; random?: () => number } = {}): Promise<Harness> {
  gorouter = await playGorouter(options.url ?? server.url, { answerGreet: options.answerGreet, greetInterval: options.greetInterval });
  cleanups.push(() => gorouter.close());
  const clock = new ManualClock();
  const source = new TestSource(options.registrations ?? [web, api]);
  const bus = new NatsBus({ nats_url: options.url ?? server.url }, logger);
  const metrics = new Registry();
  const emitter = new RouteEmitter({
    source, bus, logger, metrics, clock, wallClockMs: () => WALL_MS, random: options.random ?? (() => 0.5),
  });
  emitter.start();
  bus.start();
  cleanups.push(() => bus.close());
  const settle = async () => {
    await bus.flush(5000);
    await gorouter.nc.flush();
  };
  return { clock, source, bus, emitter, metrics, settle };
}

const bodies = (g: Gorouter, subject: 'registers' | 'unregisters') => g[subject]().map((m) => m.body);
const uris = (g: Gorouter, subject: 'registers' | 'unregisters') => g[subject]().map((m) => (m.body.uris as string[])[0]).sort();

describe('route emitter ↔ gorouter over a real nats-server', () => {
  it('registers one message per (instance, hostname) with the exact fields, then again every interval', async () => {
    const h = await harness();
    await gorouter.until((g) => g.registers().length === 3, 'first registers');
    expect(gorouter.registers().map((m) => m.raw).every((raw) => raw.includes(UPDATED_AT))).toBe(true);
    const byUri = Object.fromEntries(gorouter.registers().map((m) => [(m.body.uris as string[])[0], m.body]));
    expect(byUri['web.apps.example.com']).toEqual({
      host: '10.0.1.10', port: 8080, uris: ['web.apps.example.com'], app: 'app-web', private_instance_id: 'inst-web-0',
      private_instance_index: '0', availability_zone: 'z1', tags: { space: 'dev', component: 'route-emitter' },
      endpoint_updated_at_ns: Number('1763708255123000000'),
    });
    expect(byUri['admin.example.com']).toMatchObject({ host: '10.0.1.10', port: 9090, tls_port: 9443, uris: ['admin.example.com'] });
    expect(byUri['api.apps.example.com']).toMatchObject({ host: '10.0.1.11', port: 8081, private_instance_index: '1' });

    // The greet reply said 20 s. Nothing more before it, every route again at it.
    gorouter.clear();
    h.clock.advance(19_999);
    await h.settle();
    expect(gorouter.registers()).toEqual([]);
    h.clock.advance(1);
    await gorouter.until((g) => g.registers().length === 3, 'registers after one interval');
    expect(uris(gorouter, 'registers')).toEqual(['admin.example.com', 'api.apps.example.com', 'web.apps.example.com']);
    // endpoint_updated_at_ns belongs to the first register only.
    expect(gorouter.registers().some((m) => m.raw.includes('endpoint_updated_at_ns'))).toBe(false);
    h.clock.advance(20_000);
    await gorouter.until((g) => g.registers().length === 6, 'registers after two intervals');
    expect(await h.metrics.render()).toContain('presence_dns_route_messages_emitted_total{subject="router.register"} 9');
    expect(await h.metrics.render()).toContain('presence_dns_routes_total 3');
  });

  it('greets every second until a router answers, re-publishing at the default 20 s meanwhile', async () => {
    const h = await harness({ answerGreet: false });
    await gorouter.until((g) => g.greets === 1, 'first router.greet');
    h.clock.advance(1000);
    await gorouter.until((g) => g.greets === 2, 'second router.greet');
    h.clock.advance(1000);
    await gorouter.until((g) => g.greets === 3, 'third router.greet');
    gorouter.clear();
    h.clock.advance(18_000);
    await gorouter.until((g) => g.registers().length === 3, 'registers at the default interval');

    // A router.start answers too: interval 5 s, re-publish after the jitter (0.5 × 0.2 × 5 s).
    gorouter.sendStart(5);
    await waitFor(() => h.emitter.registerIntervalSeconds === 5, 20_000, 'router.start applied');
    const greets = gorouter.greets;
    gorouter.clear();
    h.clock.advance(499);
    await h.settle();
    expect(gorouter.registers()).toEqual([]);
    h.clock.advance(1);
    await gorouter.until((g) => g.registers().length === 3, 'jittered re-publish after router.start');
    h.clock.advance(5000);
    await gorouter.until((g) => g.registers().length === 6, 'registers at the router’s interval');
    await h.settle();
    expect(gorouter.greets).toBe(greets);
  });

  it('router.start resets the ticker: the next interval counts from the jittered re-publish', async () => {
    const h = await harness({ greetInterval: 10, random: () => 0.5 });
    await gorouter.until((g) => g.registers().length === 3, 'first registers');
    await waitFor(() => h.emitter.registerIntervalSeconds === 10, 20_000, 'greet reply applied');
    h.clock.advance(9000);
    gorouter.sendStart(8);
    await waitFor(() => h.emitter.registerIntervalSeconds === 8, 20_000, 'router.start applied');
    gorouter.clear();
    h.clock.advance(800); // jitter: 0.5 × 0.2 × 8 s
    await gorouter.until((g) => g.registers().length === 3, 're-publish after router.start');
    gorouter.clear();
    h.clock.advance(200); // t = 10 s: the greet reply's ticker would have fired here
    await h.settle();
    expect(gorouter.registers()).toEqual([]);
    h.clock.advance(7799);
    await h.settle();
    expect(gorouter.registers()).toEqual([]);
    h.clock.advance(1);
    await gorouter.until((g) => g.registers().length === 3, 'registers one interval after the re-publish');
  });

  it('publishes a change at once and unregisters a removed instance with the same body, a bounded number of times', async () => {
    const h = await harness();
    await gorouter.until((g) => g.registers().length === 3, 'first registers');
    const apiBody = required(gorouter.registers().find((m) => m.body.private_instance_id === 'inst-api-1'), 'the register of inst-api-1').body;
    gorouter.clear();

    h.source.set([web]);
    await gorouter.until((g) => g.unregisters().length === 1, 'unregister of the removed instance');
    // The body registered, without endpoint_updated_at_ns (toEqual takes a key set to undefined as absent).
    expect(bodies(gorouter, 'unregisters')).toEqual([{ ...apiBody, endpoint_updated_at_ns: undefined }]);
    expect(gorouter.registers()).toEqual([]);

    // Re-sent with the next two interval ticks, then never again.
    for (const expected of [2, 3, 3]) {
      h.clock.advance(20_000);
      await gorouter.until((g) => g.registers().length >= 2, 'interval registers');
      await h.settle();
      expect(gorouter.unregisters()).toHaveLength(expected);
      expect(uris(gorouter, 'registers')).toEqual(['admin.example.com', 'web.apps.example.com']);
      gorouter.received.splice(0, gorouter.received.length, ...gorouter.unregisters());
    }
    expect(await h.metrics.render()).toContain('presence_dns_routes_unregistered_total 1');
    expect(await h.metrics.render()).toContain('presence_dns_routes_total 2');
  });

  it('a register of the same endpoint cancels its pending unregisters', async () => {
    const h = await harness();
    await gorouter.until((g) => g.registers().length === 3, 'first registers');
    h.source.set([web]);
    await gorouter.until((g) => g.unregisters().length === 1, 'unregister');
    h.source.set([web, api]);
    await gorouter.until((g) => g.registers().length === 4, 'api registered again');
    const again = gorouter.registers()[3];
    expect(again.body.private_instance_id).toBe('inst-api-1');
    expect(again.raw).toContain('endpoint_updated_at_ns'); // a new first register
    gorouter.clear();
    h.clock.advance(20_000);
    await gorouter.until((g) => g.registers().length === 3, 'interval registers');
    h.clock.advance(20_000);
    await gorouter.until((g) => g.registers().length === 6, 'interval registers');
    await h.settle();
    expect(gorouter.unregisters()).toEqual([]);
  });

  it('a changed route is registered at once; a failing instance is unregistered', async () => {
    const h = await harness();
    await gorouter.until((g) => g.registers().length === 3, 'first registers');
    gorouter.clear();
    h.source.set([web, { ...api, routes: [route('api.apps.example.com', { port: 8081, routeServiceUrl: 'https://rs.example.com' })] }]);
    await gorouter.until((g) => g.registers().length === 1, 'register of the changed route');
    expect(gorouter.registers()[0].body).toMatchObject({ uris: ['api.apps.example.com'], route_service_url: 'https://rs.example.com' });
    expect(gorouter.unregisters()).toEqual([]);
    h.source.set([{ ...web, health: 'failing' }, api]);
    await gorouter.until((g) => g.unregisters().length === 2, 'unregisters of the failing instance');
    expect(uris(gorouter, 'unregisters')).toEqual(['admin.example.com', 'web.apps.example.com']);
  });

  it('ignores an invalid router.start and keeps its interval', async () => {
    const h = await harness();
    await waitFor(() => gorouter.greets > 0, 20_000, 'greet');
    await gorouter.until((g) => g.registers().length === 3, 'first registers');
    gorouter.nc.publish('router.start', JSON.stringify({ minimumRegisterIntervalInSeconds: -3 }));
    gorouter.nc.publish('router.start', 'garbage');
    await gorouter.nc.flush();
    await h.settle();
    expect(h.emitter.registerIntervalSeconds).toBe(20);
    gorouter.clear();
    h.clock.advance(20_000);
    await gorouter.until((g) => g.registers().length === 3, 'registers at the unchanged interval');
  });

  it('on stop, unregisters every route of this node (and what was still pending)', async () => {
    const h = await harness();
    await gorouter.until((g) => g.registers().length === 3, 'first registers');
    h.source.set([web]);
    await gorouter.until((g) => g.unregisters().length === 1, 'unregister');
    gorouter.clear();
    await h.emitter.stop();
    await gorouter.until((g) => g.unregisters().length === 3, 'unregisters at stop');
    expect(uris(gorouter, 'unregisters')).toEqual(['admin.example.com', 'api.apps.example.com', 'web.apps.example.com']);
    gorouter.sendStart(5); // a router restarting now must not bring the routes back
    await gorouter.nc.flush();
    await h.settle(); // the emitter has seen the router.start
    h.clock.advance(60_000);
    await h.settle();
    expect(gorouter.registers()).toEqual([]);
  });
});

describe('NATS outages', () => {
  it('after the NATS server restarts, every route is re-published without waiting for the interval', async () => {
    const own = await startNats({ own: true });
    cleanups.push(() => own.stop());
    const h = await harness({ url: own.url });
    await gorouter.until((g) => g.registers().length === 3, 'first registers');
    gorouter.clear();
    const before = h.clock.now();
    await own.kill();
    await waitFor(() => !h.bus.connected, 20_000, 'emitter notices the outage');
    await own.restart();
    // The gorouter client retries every 100 ms, the emitter every second: gorouter is
    // listening again before the emitter is back.
    await gorouter.until((g) => g.registers().length === 3, 're-published routes after reconnect');
    expect(uris(gorouter, 'registers')).toEqual(['admin.example.com', 'api.apps.example.com', 'web.apps.example.com']);
    expect(h.clock.now()).toBe(before); // no interval passed: the reconnect alone did it
  });

  it('NATS down at start: the daemon keeps going; the first registers, with their update time, go out once it is up', async () => {
    const own = await startNats({ own: true });
    cleanups.push(() => own.stop());
    await own.kill();
    const lines: string[] = [];
    const recording = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const failures = () => lines.filter((l) => l.includes('cannot connect to NATS')).length;
    const clock = new ManualClock();
    const bus = new NatsBus({ nats_url: own.url }, recording, clock);
    const emitter = new RouteEmitter({ source: new TestSource([web]), bus, logger: recording, metrics: new Registry(), clock, wallClockMs: () => WALL_MS });
    emitter.start();
    bus.start();
    cleanups.push(() => bus.close());
    await waitFor(() => failures() === 1, 20_000, 'first connection attempt fails');
    clock.advance(25_000); // greets, an interval tick and a connection retry, all while NATS is down
    await waitFor(() => failures() === 2, 20_000, 'retry fails too');
    await own.restart();
    gorouter = await playGorouter(own.url);
    cleanups.push(() => gorouter.close());
    clock.advance(1000); // the next retry
    await gorouter.until((g) => g.registers().length === 2, 'registers once NATS is up');
    expect(gorouter.registers().every((m) => m.raw.includes(UPDATED_AT))).toBe(true);
    expect(lines.some((l) => l.includes('connected to NATS'))).toBe(true);
  });

  it('keeps reconnecting through authentication failures (credentials being rotated)', async () => {
    const own = await startNats({ own: true, args: ['--user', 'nats', '--pass', 'old'] });
    cleanups.push(() => own.stop());
    const lines: string[] = [];
    const recording = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const authErrors = () => lines.filter((l) => l.includes('NATS error') && /authorization/i.test(l)).length;
    const clock = new ManualClock();
    const bus = new NatsBus({ nats_url: own.url, nats_user: 'nats', nats_password: 'old' }, recording);
    new RouteEmitter({ source: new TestSource([api]), bus, logger: recording, metrics: new Registry(), clock }).start();
    bus.start();
    cleanups.push(() => bus.close());
    await waitFor(() => bus.connected, 20_000, 'first connection');
    await own.restart(['--user', 'nats', '--pass', 'new']);
    // nats.js gives up after two auth failures in a row unless told not to.
    await waitFor(() => authErrors() >= 3, 15_000, 'three refused reconnects');
    await own.restart(['--user', 'nats', '--pass', 'old']);
    await waitFor(() => bus.connected, 15_000, 'reconnected once the credentials work again');
    const watcher = await playGorouter(own.url, { user: 'nats', pass: 'old' });
    cleanups.push(() => watcher.close());
    clock.advance(20_000);
    await watcher.until((g) => g.registers().length === 1, 'routes flowing again');
    expect(lines.filter((l) => l.includes('"connected to NATS"'))).toHaveLength(2);
    // Greets nobody listened to came back as "no responders" statuses: not router answers.
    expect(lines.filter((l) => l.includes('router.greet reply'))).toEqual([]);
  });

  it('authenticates with credentials in the URL, and with a token', async () => {
    const withUser = await startNats({ args: ['--user', 'nats', '--pass', 's3cret'] });
    const withToken = await startNats({ args: ['--auth', 'tok3n'] });
    cleanups.push(() => withUser.stop(), () => withToken.stop());
    const cases = [
      { watcher: { user: 'nats', pass: 's3cret' }, settings: { nats_url: withUser.url.replace('//', '//nats:s3cret@') }, url: withUser.url },
      { watcher: { token: 'tok3n' }, settings: { nats_url: withToken.url, nats_token: 'tok3n' }, url: withToken.url },
    ];
    for (const { watcher: auth, settings, url } of cases) {
      const watcher = await playGorouter(url, auth);
      cleanups.push(() => watcher.close());
      const bus = new NatsBus(settings, logger);
      const emitter = new RouteEmitter({ source: new TestSource([api]), bus, logger, metrics: new Registry(), clock: new ManualClock() });
      emitter.start();
      bus.start();
      cleanups.push(() => bus.close());
      await watcher.until((g) => g.registers().length === 1, `register through ${'nats_token' in settings ? 'token' : 'user/password'} auth`);
    }
  });

  it('connects over TLS with a client certificate (nats_tls)', async () => {
    const files = makeTlsFiles();
    const tlsServer = await startNats({ args: files.serverArgs });
    cleanups.push(() => tlsServer.stop());
    const watcher = await playGorouter(tlsServer.url, { tls: { caFile: files.ca, certFile: files.clientCert, keyFile: files.clientKey } });
    cleanups.push(() => watcher.close());
    const bus = new NatsBus({
      nats_url: tlsServer.url.replace('nats://', 'tls://'),
      nats_tls: { ca_file: files.ca, cert_file: files.clientCert, key_file: files.clientKey },
    }, logger);
    new RouteEmitter({ source: new TestSource([api]), bus, logger, metrics: new Registry(), clock: new ManualClock() }).start();
    bus.start();
    cleanups.push(() => bus.close());
    await watcher.until((g) => g.registers().length === 1, 'register over TLS');
    expect(watcher.registers()[0].body.uris).toEqual(['api.apps.example.com']);
  });
});
