// The admin API over real HTTP on loopback: /health, /ready, /metrics, mounted routes and the token.
// The registry behind /metrics is tested in metrics.test.ts.
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
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
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
