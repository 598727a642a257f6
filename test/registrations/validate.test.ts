// Registration input validation (docs/registrations.md): every field's rule, with the field and the
// place named in the error; whole-file rejection; the round trip through toEntry.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LIMITS, parseRegistration, parseRegistrationFile, RegistrationError, toEntry } from '../../src/registrations/index.ts';

const WHERE = 'instances.d/web.yaml: instances[1]';
const base = { id: '6f1c2d3e-0000-4000-8000-000000000001', group: 'web', network: 'default', deployment: 'cf', ip: '10.0.1.10' };

function rejection(entry: unknown, where = WHERE): RegistrationError {
  try {
    parseRegistration(entry, where);
  } catch (err) {
    if (err instanceof RegistrationError) return err;
    throw err;
  }
  throw new Error(`accepted: ${JSON.stringify(entry)}`);
}

function rejects(over: Record<string, unknown>, field: string, reason: RegExp): void {
  const err = rejection({ ...base, ...over });
  expect(err.code).toBe('INVALID_REGISTRATION');
  expect(err.field).toBe(field);
  expect(err.message.startsWith(WHERE)).toBe(true);
  expect(err.message).toContain(`: ${field}: `);
  expect(err.reason).toMatch(reason);
}

describe('parseRegistration', () => {
  it('fills the defaults of a minimal entry', () => {
    expect(parseRegistration(base, WHERE)).toEqual({
      ...base, domain: 'bosh', az: null, index: null, numId: null, groupIds: null, azId: null, networkId: null,
      agentId: null, health: 'unchecked', ports: {}, routes: [], app: null, isolationSegment: null, tags: {}, checks: [],
    });
  });

  it('takes every field of a full entry, lower-casing names and canonicalising the IP', () => {
    const r = parseRegistration({
      ...base, id: 'ABC-1', group: 'Web', domain: 'Platform.Internal.', az: 'z1', index: 2, ip: 'FD00::1:10',
      num_id: 7, group_ids: [1, 3], az_id: 1, network_id: 4, agent_id: 'agent-1', health: 'running',
      ports: { HTTP: 8080, metrics: 9100 },
      routes: ['Web.Apps.Example.com', { hostname: 'admin.example.com', port: 9090, tls_port: 9443, route_service_url: 'https://rs.example.com/x', protocol: 'http2', server_cert_domain_san: 'admin.internal' }, '*.wild.example.com'],
      app: 'app-guid', isolation_segment: 'iso-1', tags: { team: 'payments' },
    }, WHERE);
    expect(r).toMatchObject({
      id: 'abc-1', group: 'web', domain: 'platform.internal', az: 'z1', index: 2, ip: 'fd00:0000:0000:0000:0000:0000:0001:0010',
      numId: 7, groupIds: [1, 3], azId: 1, networkId: 4, agentId: 'agent-1', health: 'running',
      ports: { http: 8080, metrics: 9100 }, app: 'app-guid', isolationSegment: 'iso-1', tags: { team: 'payments' },
    });
    expect(r.routes).toEqual([
      { hostname: 'web.apps.example.com', port: 8080, tlsPort: null, routeServiceUrl: null, protocol: null, serverCertDomainSan: null },
      { hostname: 'admin.example.com', port: 9090, tlsPort: 9443, routeServiceUrl: 'https://rs.example.com/x', protocol: 'http2', serverCertDomainSan: 'admin.internal' },
      { hostname: '*.wild.example.com', port: 8080, tlsPort: null, routeServiceUrl: null, protocol: null, serverCertDomainSan: null },
    ]);
  });

  it('round-trips through toEntry (what GET returns can be PUT back)', () => {
    const r = parseRegistration({ ...base, az: 'z1', ports: { http: 80 }, routes: ['a.example.com', { hostname: 'b.example.com', port: 81, protocol: 'http1' }], tags: { k: 'v' } }, WHERE);
    expect(parseRegistration(toEntry(r), WHERE)).toEqual(r);
  });

  it('rejects a non-mapping entry', () => {
    const err = rejection(['id', 'x']);
    expect(err.field).toBe('(entry)');
    expect(err.message).toBe(`${WHERE}: (entry): must be a mapping of fields, got a list`);
  });

  it.each(['id', 'group', 'network', 'deployment', 'ip'])('requires %s', (field) => {
    const entry = Object.fromEntries(Object.entries(base).filter(([key]) => key !== field));
    const err = rejection(entry);
    expect(err.field).toBe(field);
    expect(err.reason).toBe('is required');
  });

  it('rejects unknown keys, suggesting the snake_case spelling', () => {
    rejects({ color: 'blue' }, 'color', /unknown field; known fields: id, group/);
    rejects({ numId: 3 }, 'numId', /did you mean "num_id"/);
  });

  it.each(['id', 'group', 'network', 'deployment', 'az'])('checks %s is a DNS label', (field) => {
    rejects({ [field]: 'has_underscore' }, field, /not a DNS label/);
    rejects({ [field]: '-leading' }, field, /not a DNS label/);
    rejects({ [field]: 'a.b' }, field, /not a DNS label/);
    rejects({ [field]: 'x'.repeat(64) }, field, /64 characters long; at most 63/);
    rejects({ [field]: '' }, field, /must not be empty/);
    rejects({ [field]: 12 }, field, /must be a string, got 12 \(quote it in YAML\)/);
  });

  it('accepts a 63-character label', () => {
    expect(parseRegistration({ ...base, group: 'g'.repeat(63) }, WHERE).group).toBe('g'.repeat(63));
  });

  it('checks domain is a name of labels, at most 253 characters', () => {
    rejects({ domain: 'bad..domain' }, 'domain', /not a valid name/);
    rejects({ domain: `${'a'.repeat(63)}.`.repeat(4) + 'ab' }, 'domain', /at most 253/);
    rejects({ domain: `${'a'.repeat(64)}.example` }, 'domain', /longer than 63/);
  });

  it('checks ip is an IPv4 or IPv6 address without a zone', () => {
    rejects({ ip: '10.0.0.256' }, 'ip', /not an IPv4 or IPv6 address/);
    rejects({ ip: 'web.example.com' }, 'ip', /not an IPv4 or IPv6 address/);
    rejects({ ip: 'fe80::1%eth0' }, 'ip', /not an IPv4 or IPv6 address/);
    rejects({ ip: 167772170 }, 'ip', /must be a string/);
  });

  it('checks index and the pinned numeric ids are non-negative integers', () => {
    for (const field of ['index', 'num_id', 'az_id', 'network_id']) {
      rejects({ [field]: -1 }, field, /must be 0-2147483647, got -1/);
      rejects({ [field]: 1.5 }, field, /must be an integer, got 1.5/);
      rejects({ [field]: '3' }, field, /must be an integer, got "3"/);
      rejects({ [field]: 2 ** 31 }, field, /must be 0-2147483647/);
    }
  });

  it('checks group_ids is a non-empty, bounded list of integers', () => {
    rejects({ group_ids: 1 }, 'group_ids', /must be a list/);
    rejects({ group_ids: [] }, 'group_ids', /at least one id/);
    rejects({ group_ids: [1, 'x'] }, 'group_ids[1]', /must be an integer/);
    rejects({ group_ids: new Array(LIMITS.groupIds + 1).fill(1) }, 'group_ids', /at most 64/);
  });

  it('checks agent_id, app and isolation_segment are bounded text', () => {
    for (const field of ['agent_id', 'app', 'isolation_segment']) {
      rejects({ [field]: 'x'.repeat(254) }, field, /at most 253/);
      rejects({ [field]: 'a\nb' }, field, /control characters/);
      rejects({ [field]: true }, field, /must be a string/);
    }
  });

  it('checks health is a known value', () => {
    rejects({ health: 'ok' }, 'health', /must be one of running, failing, unchecked, got "ok"/);
  });

  it('checks ports: label names, 1-65535, bounded', () => {
    rejects({ ports: [8080] }, 'ports', /mapping of name → port/);
    rejects({ ports: { http: 0 } }, 'ports.http', /must be 1-65535, got 0/);
    rejects({ ports: { http: 70000 } }, 'ports.http', /must be 1-65535, got 70000/);
    rejects({ ports: { http: '8080' } }, 'ports.http', /must be an integer/);
    rejects({ ports: { my_port: 1 } }, 'ports.my_port', /not a DNS label/);
    rejects({ ports: { http: 1, HTTP: 2 } }, 'ports.HTTP', /case-insensitive/);
    rejects({ ports: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`p${i}`, 1000 + i])) }, 'ports', /at most 64/);
  });

  it('takes any label as a port name, one that plain objects inherit (constructor) too', () => {
    expect(parseRegistration({ ...base, ports: { constructor: 8080 } }, WHERE).ports).toEqual({ constructor: 8080 });
  });

  it('checks routes: hostnames, ports, the http port for bare hostnames, https route services, protocols', () => {
    rejects({ routes: 'web.example.com' }, 'routes', /must be a list/);
    rejects({ routes: ['web.example.com'] }, 'routes[0]', /no "http" named port/);
    rejects({ ports: { http: 80 }, routes: ['bad_host.example.com'] }, 'routes[0]', /not a valid name/);
    rejects({ ports: { http: 80 }, routes: ['a.*.example.com'] }, 'routes[0]', /not a valid name/);
    rejects({ ports: { http: 80 }, routes: [42] }, 'routes[0]', /a hostname or a \{hostname, port, …\} mapping, got 42/);
    rejects({ routes: [{ port: 80 }] }, 'routes[0].hostname', /is required/);
    rejects({ routes: [{ hostname: 'a.example.com' }] }, 'routes[0].port', /no "http" named port/);
    rejects({ routes: [{ hostname: 'a.example.com', port: 70000 }] }, 'routes[0].port', /must be 1-65535, got 70000/);
    rejects({ routes: [{ hostname: 'a.example.com', port: 80, tls_port: 65536 }] }, 'routes[0].tls_port', /1-65535/);
    rejects({ routes: [{ hostname: 'a.example.com', port: 80, route_service_url: 'http://rs.example.com' }] }, 'routes[0].route_service_url', /empty or an https:\/\/ URL/);
    rejects({ routes: [{ hostname: 'a.example.com', port: 80, route_service_url: 'not a url' }] }, 'routes[0].route_service_url', /empty or an https:\/\/ URL/);
    rejects({ routes: [{ hostname: 'a.example.com', port: 80, protocol: 'http3' }] }, 'routes[0].protocol', /"http1" or "http2"/);
    rejects({ routes: [{ hostname: 'a.example.com', port: 80, weight: 3 }] }, 'routes[0].weight', /unknown field/);
    rejects({ ports: { http: 80 }, routes: ['a.example.com', { hostname: 'A.example.com', port: 81 }] }, 'routes[1]', /already routed by routes\[0\]/);
    rejects({ ports: { http: 80 }, routes: Array.from({ length: 101 }, (_, i) => `h${i}.example.com`) }, 'routes', /at most 100/);
  });

  it('takes an empty route_service_url as none', () => {
    const r = parseRegistration({ ...base, routes: [{ hostname: 'a.example.com', port: 80, route_service_url: '' }] }, WHERE);
    expect(r.routes[0].routeServiceUrl).toBeNull();
  });

  it('checks tags are string → string, bounded', () => {
    rejects({ tags: ['a'] }, 'tags', /mapping of string → string/);
    rejects({ tags: { count: 3 } }, 'tags.count', /must be a string, got 3/);
    rejects({ tags: { 'bad key': 'v' } }, 'tags.bad key', /tag names/);
    rejects({ tags: { k: 'v'.repeat(1025) } }, 'tags.k', /at most 1024/);
    rejects({ tags: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }, 'tags', /at most 64/);
  });
});

describe('health checks (check:, checks:)', () => {
  it('takes one check with the defaults: interval 10s, timeout 5s, rise 2, fall 3', () => {
    expect(parseRegistration({ ...base, check: { tcp: '127.0.0.1:8080' } }, WHERE).checks).toEqual([
      { kind: 'tcp', host: '127.0.0.1', port: 8080, name: 'tcp 127.0.0.1:8080', intervalMs: 10_000, timeoutMs: 5000, rise: 2, fall: 3 },
    ]);
  });

  it('takes a list of http, tcp and args checks with durations as "500ms"/"2s"/"1m" or seconds', () => {
    const r = parseRegistration({
      ...base,
      checks: [
        { http: 'http://127.0.0.1:8080/health', status: 204, interval: '2s', timeout: '500ms', rise: 1, fall: 1 },
        { tcp: '[::1]:9000', interval: 1.5, name: 'admin port' },
        { args: ['/usr/local/bin/check-db', '--quick'], interval: '1m' },
      ],
    }, WHERE);
    expect(r.health).toBe('unchecked');
    expect(r.checks).toEqual([
      { kind: 'http', url: 'http://127.0.0.1:8080/health', status: 204, name: 'http http://127.0.0.1:8080/health', intervalMs: 2000, timeoutMs: 500, rise: 1, fall: 1 },
      { kind: 'tcp', host: '::1', port: 9000, name: 'admin port', intervalMs: 1500, timeoutMs: 1500, rise: 2, fall: 3 },
      { kind: 'args', args: ['/usr/local/bin/check-db', '--quick'], name: 'args /usr/local/bin/check-db --quick', intervalMs: 60_000, timeoutMs: 5000, rise: 2, fall: 3 },
    ]);
  });

  it('round-trips checks through toEntry', () => {
    const r = parseRegistration({
      ...base, checks: [{ http: 'https://localhost/ready', interval: 0.25 }, { tcp: '[fd00::1]:5432' }, { args: ['true'], timeout: '1s', rise: 3, fall: 4 }],
    }, WHERE);
    expect(parseRegistration(toEntry(r), WHERE)).toEqual(r);
  });

  it('keeps a health given beside checks (the value until they have results); refuses check with checks', () => {
    expect(parseRegistration({ ...base, health: 'running', check: { tcp: 'localhost:80' } }, WHERE).health).toBe('running');
    rejects({ check: { tcp: 'localhost:80' }, checks: [] }, 'checks', /either check \(one\) or checks \(a list\), not both/);
  });

  it('names the check and field of a bad check', () => {
    rejects({ checks: { tcp: 'localhost:80' } }, 'checks', /must be a list of checks.*"check:" takes a mapping/);
    rejects({ check: ['tcp'] }, 'check', /must be a mapping with one of http, tcp, args, got a list/);
    rejects({ check: { interval: '1s' } }, 'check', /needs one of http, tcp, args/);
    rejects({ check: { tcp: 'localhost:80', http: 'http://localhost/' } }, 'check', /gives http and tcp; a check probes one thing/);
    rejects({ checks: [{ tcp: 'localhost:80' }, { tcp: 'localhost:80', method: 'HEAD' }] }, 'checks[1].method', /unknown field; known fields: name, http/);
    rejects({ checks: Array.from({ length: LIMITS.checksPerInstance + 1 }, () => ({ tcp: 'localhost:80' })) }, 'checks', /at most 16/);
  });

  it('checks an http check: an http(s) URL and a status 100-599 only for http', () => {
    rejects({ check: { http: 'ftp://localhost/' } }, 'check.http', /must be an http:\/\/ or https:\/\/ URL, got "ftp:/);
    rejects({ check: { http: 'localhost:8080/health' } }, 'check.http', /http:\/\/ or https:\/\/ URL/);
    rejects({ check: { http: 'http://localhost/', status: 99 } }, 'check.status', /must be 100-599, got 99/);
    rejects({ check: { tcp: 'localhost:80', status: 200 } }, 'check.status', /applies only to an http check/);
  });

  it('checks a tcp check: "host:port", the host an IP or a name, the port 1-65535', () => {
    rejects({ check: { tcp: 'localhost' } }, 'check.tcp', /is not "host:port"/);
    rejects({ check: { tcp: '::1:80' } }, 'check.tcp', /IPv6 in brackets/);
    rejects({ check: { tcp: '[localhost]:80' } }, 'check.tcp', /only an IPv6 address goes in brackets/);
    rejects({ check: { tcp: 'bad_host:80' } }, 'check.tcp', /not a valid name/);
    rejects({ check: { tcp: 'localhost:0' } }, 'check.tcp', /must be 1-65535, got 0/);
    rejects({ check: { tcp: 'localhost:70000' } }, 'check.tcp', /must be 1-65535, got 70000/);
    rejects({ check: { tcp: 8080 } }, 'check.tcp', /must be a string, got 8080/);
  });

  it('checks an args check: a non-empty list of strings (no shell)', () => {
    rejects({ check: { args: '/bin/check --quick' } }, 'check.args', /must be a list: the command and its arguments \(no shell\)/);
    rejects({ check: { args: [] } }, 'check.args', /must name the command/);
    rejects({ check: { args: ['check', 3] } }, 'check.args[1]', /must be a string, got 3/);
  });

  it('checks interval, timeout (at most the interval), rise and fall', () => {
    rejects({ check: { tcp: 'localhost:80', interval: '10 seconds' } }, 'check.interval', /must be a duration such as "10s" or "500ms"/);
    rejects({ check: { tcp: 'localhost:80', interval: '50ms' } }, 'check.interval', /must be 100ms-24h, got "50ms"/);
    rejects({ check: { tcp: 'localhost:80', interval: -1 } }, 'check.interval', /must be 100ms-24h, got -1/);
    rejects({ check: { tcp: 'localhost:80', interval: '1s', timeout: '2s' } }, 'check.timeout', /must be 10ms-1s, got "2s"/);
    rejects({ check: { tcp: 'localhost:80', rise: 0 } }, 'check.rise', /must be 1-100, got 0/);
    rejects({ check: { tcp: 'localhost:80', fall: 1.5 } }, 'check.fall', /must be an integer, got 1.5/);
  });

  it('a short interval shortens the default timeout to it', () => {
    expect(parseRegistration({ ...base, check: { tcp: 'localhost:80', interval: '200ms' } }, WHERE).checks[0].timeoutMs).toBe(200);
  });
});

describe('parseRegistrationFile', () => {
  const entry = (id: string, extra = '') => `  - { id: ${id}, group: web, network: default, deployment: cf, ip: 10.0.0.1${extra} }\n`;

  it('reads the shipped example: the instances of config/topology.json with routes for web', () => {
    const path = resolve(import.meta.dirname, '../../config/instances.d/example.yaml');
    const regs = parseRegistrationFile(path, readFileSync(path, 'utf8'));
    expect(regs.map((r) => [r.group, r.ip, r.ports])).toEqual([
      ['web', '10.0.1.10', { http: 8080 }],
      ['web', '10.0.2.10', { http: 8080 }],
      ['web', 'fd00:0000:0000:0000:0000:0000:0001:0010', { http: 8080 }],
      ['db', '10.0.1.20', { postgres: 5432 }],
    ]);
    expect(regs[0].routes.map((r) => [r.hostname, r.port, r.tlsPort])).toEqual([['web.apps.example.com', 8080, null], ['admin.example.com', 9090, 9443]]);
  });

  it('reads YAML and JSON by extension', () => {
    expect(parseRegistrationFile('a.yaml', `instances:\n${entry('a1')}`).map((r) => r.id)).toEqual(['a1']);
    expect(parseRegistrationFile('a.json', JSON.stringify({ instances: [{ ...base, id: 'j1' }] })).map((r) => r.id)).toEqual(['j1']);
    expect(parseRegistrationFile('a.yaml', 'instances: []\n')).toEqual([]);
  });

  it('rejects the whole file for one bad entry, naming file, entry and field', () => {
    const text = `instances:\n${entry('a1')}${entry('a2', ', ports: { http: 70000 }')}${entry('a3')}`;
    expect(() => parseRegistrationFile('instances.d/web.yaml', text)).toThrow('instances.d/web.yaml: instances[1] (id a2): ports.http: must be 1-65535, got 70000');
  });

  it('rejects duplicate ids within a file', () => {
    expect(() => parseRegistrationFile('w.yaml', `instances:\n${entry('a1')}${entry('A1')}`)).toThrow('w.yaml: instances[1] (id a1): id: duplicates instances[0] of the same file');
  });

  it('rejects files that do not parse or have the wrong shape', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['w.yaml', '', /\(file\): is empty; write "instances: \[\]"/],
      ['w.yaml', 'instances: [\n', /\(file\): does not parse as YAML/],
      ['w.json', '{"instances": [', /\(file\): does not parse as JSON/],
      ['w.yaml', '- a\n- b\n', /\(file\): must be a mapping with an "instances" list, got a list/],
      ['w.yaml', 'instance: []\n', /instance: unknown field/],
      ['w.yaml', 'instances: {a: 1}\n', /instances: must be a list of instances, got a mapping/],
      ['w.yaml', 'instances: []\ninstances: []\n', /does not parse as YAML: Map keys must be unique at line 2, column 1$/],
    ];
    for (const [path, text, message] of cases) expect(() => parseRegistrationFile(path, text)).toThrow(message);
  });

  it('bounds the number of instances per file and the file size', () => {
    const many = JSON.stringify({ instances: Array.from({ length: LIMITS.instancesPerFile + 1 }, (_, i) => ({ ...base, id: `i${i}` })) });
    expect(() => parseRegistrationFile('w.json', many)).toThrow(/instances: has 1001 entries; at most 1000/);
    expect(() => parseRegistrationFile('w.yaml', `# ${'x'.repeat(LIMITS.fileBytes)}\ninstances: []\n`)).toThrow(/\(file\): is \d+ bytes; at most 4194304/);
  });
});
