// Validation of registration input (docs/registrations.md): one entry of an instances.d file or of a
// PUT /v1/instances/:id body → a Registration with defaults. Pure: no I/O. Every error
// names where the entry came from, the field (snake_case, as the operator wrote it) and
// the reason, so a rejected file or request can be fixed from the message alone.
import { parseIp } from '../util/ip.ts';
import { STORED_FIELDS, type KindValues, type StoredField } from '../image/fields.ts';
import { HEALTH_VALUES, type Health } from '../image/instance.ts';
import type { CheckTarget, HealthCheck, Registration, RouteRegistration } from './types.ts';
import { formatOf, isMapping, parseStructured } from '../util/structured-file.ts';

export const LIMITS = {
  label: 63,
  name: 253,
  /** Free text such as app guids and isolation segment names. */
  text: 253,
  tagValue: 1024,
  url: 2048,
  instancesPerFile: 1000,
  routesPerInstance: 100,
  portsPerInstance: 64,
  tagsPerInstance: 64,
  groupIds: 64,
  checksPerInstance: 16,
  argsPerCheck: 64,
  argLength: 4096,
  /** Check interval bounds, ms: a check more often than this is load, not information. */
  minIntervalMs: 100,
  maxIntervalMs: 24 * 3600 * 1000,
  minTimeoutMs: 10,
  /** Consecutive results rise and fall may ask for. */
  riseFall: 100,
  /** Largest pinned numeric id: PostgreSQL `integer`. */
  numericId: 2 ** 31 - 1,
  fileBytes: 4 * 1024 * 1024,
} as const;

export class RegistrationError extends Error {
  readonly code = 'INVALID_REGISTRATION';
  /** The offending field as written in the input, e.g. `routes[1].port`; `(file)` or `(entry)` for the whole. */
  readonly field: string;
  readonly reason: string;

  constructor(where: string, field: string, reason: string) {
    super(`${where ? `${where}: ` : ''}${field}: ${reason}`);
    this.name = 'RegistrationError';
    this.field = field;
    this.reason = reason;
  }
}

type Mapping = Record<string, unknown>;

export { isMapping };

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' || value === undefined) return String(value);
  return `a ${typeof value}`;
}

// Letters, digits and inner hyphens (RFC 1123 host label); the length is checked first
// so the message can say "too long" rather than "bad syntax".
const LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
// C0 controls, DEL and C1 controls (Unicode category Cc, U+0000-U+001F and U+007F-U+009F):
// they garble logs and gorouter messages.
const CONTROL = /\p{Cc}/u;
const TAG_KEY = /^[A-Za-z0-9_.-]+$/;

/** The instance's fields an entry gives (src/image/fields.ts); the registrar sets the others. */
const INSTANCE_ENTRIES = STORED_FIELDS.flatMap((f) => (f.entry === null ? [] : [{ ...f, entry: f.entry }]));
type EntryField = StoredField & { entry: string };
/** The kinds of value every entry must give. */
const REQUIRED_KINDS: ReadonlySet<keyof KindValues> = new Set(['label', 'ip']);
const REQUIRED_ENTRIES = INSTANCE_ENTRIES.filter((f) => REQUIRED_KINDS.has(f.kind)).map((f) => f.entry);
/** Every key of an entry, the required ones first (the order an unknown key's message lists them in). */
const ENTRY_FIELDS = [
  ...REQUIRED_ENTRIES, ...INSTANCE_ENTRIES.map((f) => f.entry).filter((key) => !REQUIRED_ENTRIES.includes(key)),
  'routes', 'app', 'isolation_segment', 'tags', 'check', 'checks',
];
const CHECK_FIELDS = ['name', 'http', 'status', 'tcp', 'args', 'interval', 'timeout', 'rise', 'fall'] as const;
const CHECK_KINDS = ['http', 'tcp', 'args'] as const;

/** What a check that leaves out interval, timeout, rise or fall gets (HAProxy's rise 2 / fall 3). */
export const CHECK_DEFAULTS = { intervalMs: 10_000, timeoutMs: 5_000, rise: 2, fall: 3 } as const;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const ROUTE_FIELDS = ['hostname', 'port', 'tls_port', 'route_service_url', 'protocol', 'server_cert_domain_san'] as const;

/** Field checks that throw a RegistrationError carrying the entry's place. */
class Check {
  constructor(private readonly where: string) {}

  fail(field: string, reason: string): never {
    throw new RegistrationError(this.where, field, reason);
  }

  unknownKeys(value: Mapping, known: readonly string[], prefix: string): void {
    for (const key of Object.keys(value)) {
      if (known.includes(key)) continue;
      const snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
      const hint = snake !== key && known.includes(snake) ? `; did you mean "${snake}"?` : `; known fields: ${known.join(', ')}`;
      this.fail(`${prefix}${key}`, `unknown field${hint}`);
    }
  }

  string(value: unknown, field: string, max: number): string {
    if (typeof value !== 'string') {
      const quote = typeof value === 'number' || typeof value === 'boolean' ? ' (quote it in YAML)' : '';
      this.fail(field, `must be a string, got ${describe(value)}${quote}`);
    }
    if (value.length === 0) this.fail(field, 'must not be empty');
    if (value.length > max) this.fail(field, `is ${value.length} characters long; at most ${max}`);
    if (CONTROL.test(value)) this.fail(field, 'must not contain control characters');
    return value;
  }

  label(value: unknown, field: string): string {
    const text = this.string(value, field, LIMITS.label).toLowerCase();
    if (!LABEL.test(text)) this.fail(field, `${describe(value)} is not a DNS label (letters, digits and inner hyphens)`);
    return text;
  }

  /** A dotted name (lower-cased, trailing dot dropped); `wildcard` allows a leading `*.`. */
  name(value: unknown, field: string, wildcard = false): string {
    const text = this.string(value, field, LIMITS.name).toLowerCase().replace(/\.$/, '');
    const labels = text.split('.');
    labels.forEach((label, i) => {
      if (wildcard && i === 0 && label === '*' && labels.length > 1) return;
      if (label.length > LIMITS.label) this.fail(field, `${describe(value)}: label "${label.slice(0, 20)}…" is longer than ${LIMITS.label} characters`);
      if (!LABEL.test(label)) this.fail(field, `${describe(value)} is not a valid name (dot-separated labels of letters, digits and inner hyphens)`);
    });
    return text;
  }

  int(value: unknown, field: string, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isInteger(value)) this.fail(field, `must be an integer, got ${describe(value)}`);
    if (value < min || value > max) this.fail(field, `must be ${min}-${max}, got ${value}`);
    return value;
  }

  port(value: unknown, field: string): number {
    return this.int(value, field, 1, 65535);
  }

  /** A number of seconds (as the config file's durations) or a string with a unit: "500ms", "10s", "1m", "1h". */
  duration(value: unknown, field: string, minMs: number, maxMs: number): number {
    let ms: number;
    if (typeof value === 'number' && Number.isFinite(value)) {
      ms = value * 1000;
    } else {
      const match = typeof value === 'string' ? DURATION.exec(value.trim()) : null;
      if (!match) this.fail(field, `must be a duration such as "10s" or "500ms" (a bare number is seconds), got ${describe(value)}`);
      ms = Number(match[1]) * DURATION_UNITS_MS[match[2]];
    }
    if (ms < minMs || ms > maxMs) this.fail(field, `must be ${formatDuration(minMs)}-${formatDuration(maxMs)}, got ${describe(value)}`);
    return Math.round(ms);
  }

  optional<T>(value: unknown, read: (v: unknown) => T): T | null {
    return value === undefined || value === null ? null : read(value);
  }
}

function parsePorts(check: Check, value: unknown, field: string): Record<string, number> {
  if (value === undefined || value === null) return {};
  if (!isMapping(value)) check.fail(field, `must be a mapping of name → port, got ${describe(value)}`);
  const names = Object.keys(value);
  if (names.length > LIMITS.portsPerInstance) check.fail(field, `has ${names.length} entries; at most ${LIMITS.portsPerInstance}`);
  // A map, not an object: a port may be named like an Object property ("constructor").
  const ports = new Map<string, number>();
  for (const name of names) {
    const key = check.label(name, `${field}.${name}`);
    if (ports.has(key)) check.fail(`${field}.${name}`, `names the same port as another entry ("${key}"); port names are case-insensitive`);
    ports.set(key, check.port(value[name], `${field}.${name}`));
  }
  return Object.fromEntries(ports);
}

function parseRoutes(check: Check, value: unknown, ports: Partial<Record<string, number>>): RouteRegistration[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) check.fail('routes', `must be a list of hostnames or {hostname, port, …} mappings, got ${describe(value)}`);
  if (value.length > LIMITS.routesPerInstance) check.fail('routes', `has ${value.length} entries; at most ${LIMITS.routesPerInstance}`);
  const seen = new Map<string, number>();
  return value.map((item: unknown, i) => {
    const field = `routes[${i}]`;
    const httpPort = (portField: string): number => {
      const { http } = ports;
      if (http === undefined) check.fail(portField, 'no port given and the instance has no "http" named port in ports');
      return http;
    };
    let route: RouteRegistration;
    if (typeof item === 'string') {
      route = { hostname: check.name(item, field, true), port: httpPort(field), tlsPort: null, routeServiceUrl: null, protocol: null, serverCertDomainSan: null };
    } else if (isMapping(item)) {
      check.unknownKeys(item, ROUTE_FIELDS, `${field}.`);
      if (item.hostname === undefined || item.hostname === null) check.fail(`${field}.hostname`, 'is required');
      route = {
        hostname: check.name(item.hostname, `${field}.hostname`, true),
        port: item.port === undefined || item.port === null ? httpPort(`${field}.port`) : check.port(item.port, `${field}.port`),
        tlsPort: check.optional(item.tls_port, (v) => check.port(v, `${field}.tls_port`)),
        routeServiceUrl: routeServiceUrl(check, item.route_service_url, `${field}.route_service_url`),
        protocol: check.optional(item.protocol, (v) => {
          if (v !== 'http1' && v !== 'http2') check.fail(`${field}.protocol`, `must be "http1" or "http2", got ${describe(v)}`);
          return v;
        }),
        serverCertDomainSan: check.optional(item.server_cert_domain_san, (v) => check.string(v, `${field}.server_cert_domain_san`, LIMITS.name)),
      };
    } else {
      check.fail(field, `must be a hostname or a {hostname, port, …} mapping, got ${describe(item)}`);
    }
    const earlier = seen.get(route.hostname);
    if (earlier !== undefined) check.fail(field, `hostname "${route.hostname}" is already routed by routes[${earlier}]; one route per hostname and instance`);
    seen.set(route.hostname, i);
    return route;
  });
}

function routeServiceUrl(check: Check, value: unknown, field: string): string | null {
  if (value === undefined || value === null || value === '') return null;
  const text = check.string(value, field, LIMITS.url);
  let url: URL | null = null;
  try {
    url = new URL(text);
  } catch {
    // reported below with the same message as a non-https URL
  }
  if (url?.protocol !== 'https:' || !url.hostname) check.fail(field, `must be empty or an https:// URL, got ${describe(value)}`);
  return text;
}

/** A duration in the shortest exact unit, as the registration input accepts it back. */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** `check:` (one) or `checks:` (a list) → the instance's checks, defaults applied. */
function parseChecks(check: Check, entry: Mapping): HealthCheck[] {
  const one = entry.check ?? null;
  const many = entry.checks ?? null;
  if (one !== null && many !== null) check.fail('checks', 'give either check (one) or checks (a list), not both');
  if (one === null && many === null) return [];
  if (one !== null) return [parseCheck(check, one, 'check')];
  if (!Array.isArray(many)) check.fail('checks', `must be a list of checks, got ${describe(many)}; for one check, "check:" takes a mapping`);
  if (many.length > LIMITS.checksPerInstance) check.fail('checks', `has ${many.length} entries; at most ${LIMITS.checksPerInstance}`);
  return many.map((item: unknown, i) => parseCheck(check, item, `checks[${i}]`));
}

function parseCheck(check: Check, value: unknown, field: string): HealthCheck {
  if (!isMapping(value)) check.fail(field, `must be a mapping with one of ${CHECK_KINDS.join(', ')}, got ${describe(value)}`);
  check.unknownKeys(value, CHECK_FIELDS, `${field}.`);
  const kinds = CHECK_KINDS.filter((kind) => value[kind] !== undefined && value[kind] !== null);
  if (kinds.length !== 1) {
    check.fail(field, kinds.length ? `gives ${kinds.join(' and ')}; a check probes one thing (one of ${CHECK_KINDS.join(', ')})` : `needs one of ${CHECK_KINDS.join(', ')} (what to probe)`);
  }
  const kind = kinds[0];
  if (kind !== 'http' && value.status !== undefined && value.status !== null) check.fail(`${field}.status`, 'applies only to an http check');
  const target: CheckTarget = kind === 'http'
    ? { kind, url: httpUrl(check, value.http, `${field}.http`), status: check.optional(value.status, (v) => check.int(v, `${field}.status`, 100, 599)) }
    : kind === 'tcp'
      ? { kind, ...tcpAddress(check, value.tcp, `${field}.tcp`) }
      : { kind, args: commandArgs(check, value.args, `${field}.args`) };
  const intervalMs = check.optional(value.interval, (v) => check.duration(v, `${field}.interval`, LIMITS.minIntervalMs, LIMITS.maxIntervalMs)) ?? CHECK_DEFAULTS.intervalMs;
  const timeoutMs = check.optional(value.timeout, (v) => check.duration(v, `${field}.timeout`, LIMITS.minTimeoutMs, intervalMs))
    ?? Math.min(CHECK_DEFAULTS.timeoutMs, intervalMs);
  const count = (name: 'rise' | 'fall') => check.optional(value[name], (v) => check.int(v, `${field}.${name}`, 1, LIMITS.riseFall)) ?? CHECK_DEFAULTS[name];
  return {
    ...target,
    name: check.optional(value.name, (v) => check.string(v, `${field}.name`, LIMITS.text)) ?? describeTarget(target),
    intervalMs,
    timeoutMs,
    rise: count('rise'),
    fall: count('fall'),
  };
}

function describeTarget(target: CheckTarget): string {
  switch (target.kind) {
    case 'http': return `http ${target.url}`;
    case 'tcp': return `tcp ${hostPort(target.host, target.port)}`;
    case 'args': return `args ${target.args.join(' ')}`.slice(0, LIMITS.text);
  }
}

/** "host:port" as a tcp check is written (an IPv6 host in brackets). */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function httpUrl(check: Check, value: unknown, field: string): string {
  const text = check.string(value, field, LIMITS.url);
  let url: URL | null = null;
  try {
    url = new URL(text);
  } catch {
    // reported below with the same message as a URL of another scheme
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) check.fail(field, `must be an http:// or https:// URL, got ${describe(value)}`);
  return text;
}

/** "host:port" or "[v6]:port"; the host an IP address or a DNS name. */
function tcpAddress(check: Check, value: unknown, field: string): { host: string; port: number } {
  const text = check.string(value, field, LIMITS.name + 8);
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(text);
  if (!match) check.fail(field, `${describe(value)} is not "host:port" (IPv6 in brackets: "[::1]:8080")`);
  // The first group is the bracketed form's; it is absent for a name or an IPv4 address.
  const bracketed = match.at(1);
  const host = (bracketed ?? match[2]).toLowerCase();
  const ip = parseIp(host);
  if (bracketed !== undefined && ip?.family !== 6) check.fail(field, `${describe(value)}: only an IPv6 address goes in brackets`);
  if (!ip) check.name(host, field);
  return { host, port: check.port(Number(match[3]), field) };
}

function commandArgs(check: Check, value: unknown, field: string): string[] {
  if (!Array.isArray(value)) check.fail(field, `must be a list: the command and its arguments (no shell), got ${describe(value)}`);
  if (value.length === 0) check.fail(field, 'must name the command to run');
  if (value.length > LIMITS.argsPerCheck) check.fail(field, `has ${value.length} entries; at most ${LIMITS.argsPerCheck}`);
  return value.map((arg: unknown, i) => check.string(arg, `${field}[${i}]`, LIMITS.argLength));
}

function parseTags(check: Check, value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isMapping(value)) check.fail('tags', `must be a mapping of string → string, got ${describe(value)}`);
  const keys = Object.keys(value);
  if (keys.length > LIMITS.tagsPerInstance) check.fail('tags', `has ${keys.length} entries; at most ${LIMITS.tagsPerInstance}`);
  const tags: Record<string, string> = {};
  for (const key of keys) {
    if (key.length > LIMITS.label || !TAG_KEY.test(key)) check.fail(`tags.${key}`, `tag names are 1-${LIMITS.label} of letters, digits, "_", "." and "-"`);
    tags[key] = check.string(value[key], `tags.${key}`, LIMITS.tagValue);
  }
  return tags;
}

function parseIdList(check: Check, value: unknown, field: string): number[] | null {
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value)) check.fail(field, `must be a list of integers, got ${describe(value)}`);
  if (value.length === 0) check.fail(field, 'must list at least one id; leave it out to let the database allocate one');
  if (value.length > LIMITS.groupIds) check.fail(field, `has ${value.length} entries; at most ${LIMITS.groupIds}`);
  return value.map((v: unknown, i) => check.int(v, `${field}[${i}]`, 0, LIMITS.numericId));
}

/** What an entry gives of each kind: numeric ids may be left to the database, health has a default. */
type EntryValues = Omit<KindValues, 'idList' | 'health'> & { idList: number[] | null; health: Health };

/** Reads each kind of value from an entry (`value` is what it gives under the field's key). */
const ENTRY_READERS: { [T in keyof EntryValues]: (check: Check, value: unknown, field: string) => EntryValues[T] } = {
  label: (check, value, field) => check.label(value, field),
  optionalLabel: (check, value, field) => check.optional(value, (v) => check.label(v, field)),
  domain: (check, value, field) => check.optional(value, (v) => check.name(v, field)) ?? 'bosh',
  numericId: (check, value, field) => check.optional(value, (v) => check.int(v, field, 0, LIMITS.numericId)),
  int: (check, value, field) => check.optional(value, (v) => check.int(v, field, 0, LIMITS.numericId)),
  idList: parseIdList,
  ip: (check, value, field) => {
    const text = check.string(value, field, 64);
    const ip = text.includes('%') ? null : parseIp(text);
    return ip ? ip.canonical : check.fail(field, `${describe(value)} is not an IPv4 or IPv6 address`);
  },
  text: (check, value, field) => check.optional(value, (v) => check.string(v, field, LIMITS.text)),
  health: (check, value, field) => check.optional(value, (v) => {
    if (!HEALTH_VALUES.includes(v as Health)) check.fail(field, `must be one of ${HEALTH_VALUES.join(', ')}, got ${describe(v)}`);
    return v as Health;
  }) ?? 'unchecked',
  ports: parsePorts,
};

/** The instance part of a registration. */
type InstanceEntry = Omit<Registration, 'routes' | 'app' | 'isolationSegment' | 'tags' | 'checks'>;

function parseInstanceFields(check: Check, entry: Mapping): InstanceEntry {
  const fields: Record<string, unknown> = {};
  for (const f of INSTANCE_ENTRIES as EntryField[]) fields[f.key] = ENTRY_READERS[f.kind](check, entry[f.entry], f.entry);
  // ENTRY_READERS gives each field the type its kind has in a Registration.
  return fields as InstanceEntry;
}

/**
 * Pure validation of one entry (docs/registrations.md, snake_case keys) → a Registration with
 * defaults. `where` prefixes messages, e.g. "instances.d/web.yaml: instances[1]".
 */
export function parseRegistration(entry: unknown, where: string): Registration {
  if (!isMapping(entry)) throw new RegistrationError(where, '(entry)', `must be a mapping of fields, got ${describe(entry)}`);
  // The id, when readable, makes the place findable in a long file or a log line.
  const named = typeof entry.id === 'string' && entry.id && entry.id.length <= LIMITS.label ? `${where} (id ${entry.id})` : where;
  const check: Check = new Check(named);
  check.unknownKeys(entry, ENTRY_FIELDS, '');
  for (const field of REQUIRED_ENTRIES) {
    if (entry[field] === undefined || entry[field] === null) check.fail(field, 'is required');
  }
  const fields = parseInstanceFields(check, entry);
  const checks = parseChecks(check, entry);
  return {
    ...fields,
    routes: parseRoutes(check, entry.routes, fields.ports),
    app: check.optional(entry.app, (v) => check.string(v, 'app', LIMITS.text)),
    isolationSegment: check.optional(entry.isolation_segment, (v) => check.string(v, 'isolation_segment', LIMITS.text)),
    tags: parseTags(check, entry.tags),
    checks,
  };
}

/** A parser's message without the source excerpt YAML appends on the following lines. */
export function firstLine(err: unknown): string {
  return (err as Error).message.split('\n')[0].replace(/:$/, '');
}

/**
 * Parses a registration document (`{instances: [...]}`, YAML or JSON by extension) with
 * an instance bound; any bad entry rejects the whole document.
 */
export function parseRegistrationDocument(path: string, text: string, maxInstances: number): Registration[] {
  const bytes = Buffer.byteLength(text);
  if (bytes > LIMITS.fileBytes) throw new RegistrationError(path, '(file)', `is ${bytes} bytes; at most ${LIMITS.fileBytes}`);
  // An empty file is more often a write caught half-way than a wish to register nothing.
  if (text.trim() === '') throw new RegistrationError(path, '(file)', 'is empty; write "instances: []" to register nothing from it');
  let doc: unknown;
  try {
    doc = parseStructured(path, text);
  } catch (err) {
    throw new RegistrationError(path, '(file)', `does not parse as ${formatOf(path)}: ${firstLine(err)}`);
  }
  if (!isMapping(doc)) throw new RegistrationError(path, '(file)', `must be a mapping with an "instances" list, got ${describe(doc)}`);
  new Check(path).unknownKeys(doc, ['instances'], '');
  const { instances } = doc;
  if (!Array.isArray(instances)) throw new RegistrationError(path, 'instances', `must be a list of instances, got ${describe(instances)}`);
  if (instances.length > maxInstances) throw new RegistrationError(path, 'instances', `has ${instances.length} entries; at most ${maxInstances}`);
  const seen = new Map<string, number>();
  return instances.map((entry: unknown, i) => {
    const registration = parseRegistration(entry, `${path}: instances[${i}]`);
    const earlier = seen.get(registration.id);
    if (earlier !== undefined) {
      throw new RegistrationError(`${path}: instances[${i}] (id ${registration.id})`, 'id', `duplicates instances[${earlier}] of the same file`);
    }
    seen.set(registration.id, i);
    return registration;
  });
}

/** Pure: a whole file's text (YAML or JSON by extension) → its registrations; any bad entry rejects the whole file. */
export function parseRegistrationFile(path: string, text: string): Registration[] {
  return parseRegistrationDocument(path, text, LIMITS.instancesPerFile);
}

/** The snake_case entry a Registration came from, with every default spelled out; parses back to the same Registration. */
export function toEntry(registration: Registration): Record<string, unknown> {
  const r = registration;
  const fields: InstanceEntry = r;
  return {
    ...Object.fromEntries((INSTANCE_ENTRIES as EntryField[]).map((f) => [f.entry, fields[f.key as keyof InstanceEntry]])),
    routes: r.routes.map((route) => ({
      hostname: route.hostname, port: route.port, tls_port: route.tlsPort, route_service_url: route.routeServiceUrl,
      protocol: route.protocol, server_cert_domain_san: route.serverCertDomainSan,
    })),
    app: r.app, isolation_segment: r.isolationSegment, tags: r.tags,
    checks: r.checks.map(checkEntry),
  };
}

function checkEntry(c: HealthCheck): Record<string, unknown> {
  const target = c.kind === 'http' ? { http: c.url, status: c.status } : c.kind === 'tcp' ? { tcp: hostPort(c.host, c.port) } : { args: c.args };
  return { name: c.name, ...target, interval: formatDuration(c.intervalMs), timeout: formatDuration(c.timeoutMs), rise: c.rise, fall: c.fall };
}
