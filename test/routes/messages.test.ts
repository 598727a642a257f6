import { describe, expect, it } from 'vitest';
import { diffEndpoints, routeEndpoints, withUpdatedAt } from '../../src/routes/messages.ts';
import { required } from '../helpers/required.ts';
import { registration, route } from './fixtures.ts';

const noDefaults = { isolationSegment: null };

describe('routeEndpoints', () => {
  it('makes one gorouter message per (instance, hostname) with every field the registration gives', () => {
    const reg = registration({
      id: 'inst-1', ip: '10.0.1.10', index: 3, az: 'z1', app: 'app-guid', isolationSegment: 'iso-1',
      tags: { space: 'dev' },
      routes: [
        route('web.apps.example.com'),
        route('admin.example.com', {
          port: 9090, tlsPort: 9443, protocol: 'http2', serverCertDomainSan: 'inst-1.internal',
          routeServiceUrl: 'https://rs.example.com',
        }),
      ],
    });
    const bodies = [...routeEndpoints([reg], noDefaults).values()].map((e) => e.body);
    expect(bodies).toEqual([
      {
        host: '10.0.1.10', port: 8080, uris: ['web.apps.example.com'], app: 'app-guid',
        private_instance_id: 'inst-1', private_instance_index: '3', isolation_segment: 'iso-1', availability_zone: 'z1',
        tags: { space: 'dev', component: 'route-emitter' },
      },
      {
        host: '10.0.1.10', port: 9090, tls_port: 9443, protocol: 'http2', uris: ['admin.example.com'], app: 'app-guid',
        private_instance_id: 'inst-1', private_instance_index: '3', server_cert_domain_san: 'inst-1.internal',
        isolation_segment: 'iso-1', availability_zone: 'z1', route_service_url: 'https://rs.example.com',
        tags: { space: 'dev', component: 'route-emitter' },
      },
    ]);
  });

  it('leaves optional fields out rather than sending nulls, and always tags the component', () => {
    const [endpoint] = routeEndpoints([registration({ id: 'i', index: null })], noDefaults).values();
    expect(JSON.parse(endpoint.json)).toEqual({
      host: '10.0.1.10', port: 8080, uris: ['web.apps.example.com'], private_instance_id: 'i', tags: { component: 'route-emitter' },
    });
  });

  it('an index of 0 is sent as the string "0"', () => {
    const [endpoint] = routeEndpoints([registration({ index: 0 })], noDefaults).values();
    expect(endpoint.body.private_instance_index).toBe('0');
  });

  it('a registration tag cannot replace component=route-emitter', () => {
    const [endpoint] = routeEndpoints([registration({ tags: { component: 'mine' } })], noDefaults).values();
    expect(endpoint.body.tags.component).toBe('route-emitter');
  });

  it('uses the configured isolation segment when the registration names none', () => {
    const regs = [registration({ id: 'a' }), registration({ id: 'b', isolationSegment: 'own' })];
    const bodies = [...routeEndpoints(regs, { isolationSegment: 'cell-seg' }).values()].map((e) => e.body.isolation_segment);
    expect(bodies).toEqual(['cell-seg', 'own']);
  });

  it('gives a failing instance no routes', () => {
    const regs = [registration({ id: 'ok' }), registration({ id: 'bad', ip: '10.0.1.11', health: 'failing' }), registration({ id: 'unchecked', ip: '10.0.1.12', health: 'unchecked' })];
    expect([...routeEndpoints(regs, noDefaults).values()].map((e) => e.body.private_instance_id)).toEqual(['ok', 'unchecked']);
  });
});

describe('diffEndpoints', () => {
  const a = registration({ id: 'a', ip: '10.0.0.1', routes: [route('x.example.com'), route('y.example.com')] });
  const b = registration({ id: 'b', ip: '10.0.0.2', routes: [route('x.example.com')] });

  it('registers new endpoints and unregisters gone ones with the body they had', () => {
    const before = routeEndpoints([a], noDefaults);
    const after = routeEndpoints([{ ...a, routes: [route('x.example.com')] }, b], noDefaults);
    const diff = diffEndpoints(before, after);
    expect(diff.register.map((e) => e.key)).toEqual(['x.example.com 10.0.0.2:8080 b']);
    expect(diff.unregister.map((e) => e.body)).toEqual([required(before.get('y.example.com 10.0.0.1:8080 a'), 'the endpoint of y.example.com').body]);
  });

  it('re-registers an endpoint whose fields changed, without unregistering it', () => {
    const before = routeEndpoints([a], noDefaults);
    const after = routeEndpoints([{ ...a, tags: { v: '2' } }], noDefaults);
    const diff = diffEndpoints(before, after);
    expect(diff.register).toHaveLength(2);
    expect(diff.unregister).toEqual([]);
  });

  it('a changed port is a different backend: the old one is unregistered', () => {
    const before = routeEndpoints([b], noDefaults);
    const after = routeEndpoints([{ ...b, routes: [route('x.example.com', { port: 9000 })] }], noDefaults);
    const diff = diffEndpoints(before, after);
    expect(diff.unregister.map((e) => e.body.port)).toEqual([8080]);
    expect(diff.register.map((e) => e.body.port)).toEqual([9000]);
  });

  it('nothing changed → nothing to send', () => {
    expect(diffEndpoints(routeEndpoints([a, b], noDefaults), routeEndpoints([a, b], noDefaults))).toEqual({ register: [], unregister: [] });
  });
});

describe('withUpdatedAt', () => {
  it('adds the update time in nanoseconds, exactly, to the body', () => {
    const [endpoint] = routeEndpoints([registration()], noDefaults).values();
    const text = withUpdatedAt(endpoint, 1763708255123000001n);
    expect(text).toMatch(/"endpoint_updated_at_ns":1763708255123000001}$/);
    expect({ ...JSON.parse(text), endpoint_updated_at_ns: 0 }).toEqual({ ...endpoint.body, endpoint_updated_at_ns: 0 });
  });
});
