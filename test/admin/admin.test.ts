// The admin API over real HTTP on loopback, and the Prometheus text it serves.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminServer, Registry } from '../../src/admin/index.ts';

const servers: AdminServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function serve(token?: string): Promise<{ server: AdminServer; metrics: Registry; get: (path: string, auth?: string) => Promise<Response> }> {
  const metrics = new Registry();
  const server = new AdminServer({ address: '127.0.0.1', port: 0, token, metrics, logger: pino({ level: 'silent' }) });
  servers.push(server);
  await server.start();
  return {
    server,
    metrics,
    get: (path, auth) => fetch(`http://127.0.0.1:${server.port}${path}`, auth ? { headers: { authorization: auth } } : {}),
  };
}

describe('Prometheus registry', () => {
  it('renders counters with labels, gauges read at scrape time and histograms in the text format', async () => {
    const r = new Registry();
    r.counter('x_total', 'Xs.', { labelNames: ['rcode'] }).inc({ rcode: 'NOERROR' });
    r.counter('x_total', 'Xs.', { labelNames: ['rcode'] }).inc({ rcode: 'NOERROR' }, 2);
    r.counter('y_total', 'Ys.');
    let live = 6;
    r.gauge('g', 'G.', { collect: () => live });
    live = 7;
    r.histogram('h_seconds', 'H.', { labelNames: ['proto'], buckets: [0.1, 1] }).observe({ proto: 'udp' }, 0.5);
    expect((await r.render()).split('\n')).toEqual([
      '# HELP x_total Xs.', '# TYPE x_total counter', 'x_total{rcode="NOERROR"} 3', '',
      '# HELP y_total Ys.', '# TYPE y_total counter', 'y_total 0', '',
      '# HELP g G.', '# TYPE g gauge', 'g 7', '',
      '# HELP h_seconds H.', '# TYPE h_seconds histogram',
      'h_seconds_bucket{le="0.1",proto="udp"} 0', 'h_seconds_bucket{le="1",proto="udp"} 1', 'h_seconds_bucket{le="+Inf",proto="udp"} 1',
      'h_seconds_sum{proto="udp"} 0.5', 'h_seconds_count{proto="udp"} 1',
      '',
    ]);
  });

  it('refuses a second declaration of a name with other labels, naming both', () => {
    const r = new Registry();
    r.counter('x_total', 'Xs.', { labelNames: ['rcode'] });
    expect(() => r.counter('x_total', 'Xs.', { labelNames: ['proto'] })).toThrow('metric x_total was declared with labels [rcode], now asked for with [proto]');
  });

  it('adds hot-path children into the same series as ordinary increments and observations', async () => {
    const r = new Registry();
    const requests = r.counter('req_total', 'Requests.', { labelNames: ['proto'] });
    const hot = r.hotCounter(requests, { proto: 'udp' });
    for (let i = 0; i < 4; i++) hot.inc();
    requests.inc({ proto: 'udp' });
    const duration = r.histogram('d_seconds', 'D.', { labelNames: ['proto'], buckets: [0.001, 0.01] });
    const fast = r.hotHistogram(duration, { proto: 'udp' });
    fast.observe(0.0005);
    fast.observe(0.005);
    fast.observe(3);
    duration.observe({ proto: 'udp' }, 0.0002);
    const text = await r.render();
    expect(text).toContain('req_total{proto="udp"} 5');
    expect(text).toContain('d_seconds_bucket{le="0.001",proto="udp"} 2');
    expect(text).toContain('d_seconds_bucket{le="0.01",proto="udp"} 3');
    expect(text).toContain('d_seconds_bucket{le="+Inf",proto="udp"} 4');
    expect(text).toContain('d_seconds_sum{proto="udp"} 3.0057');
    expect(text).toContain('d_seconds_count{proto="udp"} 4');
    // A second scrape counts nothing twice.
    expect(await r.value('req_total', { proto: 'udp' })).toBe(5);
    expect(await r.value('d_seconds', { proto: 'udp' })).toBe(4);
  });

  it('turns a running total kept elsewhere into a counter', async () => {
    const r = new Registry();
    let hits = 3;
    r.counter('hits_total', 'Hits.', { total: () => hits });
    expect(await r.value('hits_total')).toBe(3);
    hits = 10;
    expect(await r.value('hits_total')).toBe(10);
  });

  it('exports the process metrics once they are turned on: RSS, file descriptors, event-loop lag, GC, heap', async () => {
    const r = new Registry();
    r.collectProcessMetrics();
    const text = await r.render();
    for (const name of ['process_resident_memory_bytes', 'process_open_fds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_gc_duration_seconds', 'nodejs_heap_size_used_bytes']) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(await r.value('process_resident_memory_bytes')).toBeGreaterThan(10 * 1024 * 1024);
  });

  it('escapes label values', async () => {
    const r = new Registry();
    r.counter('c', 'C.', { labelNames: ['v'] }).inc({ v: 'a"b\\c\nd' });
    expect(await r.render()).toContain('c{v="a\\"b\\\\c\\nd"} 1');
  });
});

describe('AdminServer', () => {
  it('answers /health, and /ready 503 with the reason until every module is ready', async () => {
    const { server, get } = await serve();
    let loaded = false;
    server.addReadinessCheck('topology', () => ({ ready: loaded, detail: loaded ? { version: 3 } : { reason: 'no topology loaded yet' } }));
    expect((await get('/health')).status).toBe(200);
    const before = await get('/ready');
    expect(before.status).toBe(503);
    expect(await before.json()).toEqual({ ready: false, modules: { topology: { ready: false, detail: { reason: 'no topology loaded yet' } } } });
    loaded = true;
    const after = await get('/ready/');
    expect(after.status).toBe(200);
    expect(await after.json()).toEqual({ ready: true, modules: { topology: { ready: true, detail: { version: 3 } } } });
  });

  it('serves /metrics as Prometheus text', async () => {
    const { metrics, get } = await serve();
    metrics.counter('coredns_dns_requests_total', 'Requests.', { labelNames: ['proto', 'type'] }).inc({ proto: 'udp', type: 'A' });
    const res = await get('/metrics');
    expect(res.headers.get('content-type')).toContain('text/plain');
    expect(await res.text()).toContain('coredns_dns_requests_total{proto="udp",type="A"} 1');
  });

  it('mounts module routes and answers 404 for the rest', async () => {
    const { server, get } = await serve();
    server.route('/v1/things', (req) => ({ status: 200, body: { params: req.params } }));
    expect(await (await get('/v1/things/a%20b/c')).json()).toEqual({ params: ['a b', 'c'] });
    const malformed = await get('/v1/things/%E0%A4%A');
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toEqual({ error: 'malformed percent-encoding in /v1/things/%E0%A4%A' });
    const missing = await get('/nope');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'no such endpoint: /nope' });
  });

  it('with a token, guards everything but /health', async () => {
    const { get } = await serve('s3cret');
    expect((await get('/health')).status).toBe(200);
    expect((await get('/metrics')).status).toBe(401);
    expect((await get('/metrics', 'Bearer wrong')).status).toBe(401);
    expect((await get('/metrics', 'Bearer s3cret')).status).toBe(200);
  });
});
