// Registrations as the registrations module hands them over (already validated), and a
// minimal RegistrationSource the emitter tests drive by hand.
import { EventEmitter } from 'node:events';
import type { Registration, RegistrationSource, RouteRegistration } from '../../src/registrations/types.ts';

export function route(hostname: string, over: Partial<RouteRegistration> = {}): RouteRegistration {
  return { hostname, port: 8080, tlsPort: null, routeServiceUrl: null, protocol: null, serverCertDomainSan: null, ...over };
}

export function registration(over: Partial<Registration> = {}): Registration {
  return {
    id: '6f1c2d3e-0000-4000-8000-000000000001',
    group: 'web',
    network: 'default',
    deployment: 'cf',
    domain: 'bosh',
    az: null,
    index: null,
    ip: '10.0.1.10',
    numId: null,
    groupIds: null,
    azId: null,
    networkId: null,
    agentId: null,
    health: 'running',
    ports: { http: 8080 },
    routes: [route('web.apps.example.com')],
    app: null,
    isolationSegment: null,
    tags: {},
    checks: [],
    ...over,
  };
}

export class TestSource extends EventEmitter<{ change: [Registration[]] }> implements RegistrationSource {
  constructor(private current: Registration[] = []) {
    super();
  }

  list(): Registration[] {
    return this.current;
  }

  set(registrations: Registration[]): void {
    this.current = registrations;
    this.emit('change', registrations);
  }
}
