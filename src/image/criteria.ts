// The query language of platform names (docs/names.md), parsed into a value before any
// matching happens: `<sel>.<group>.<network>.<deployment>.<tld>`, the short form
// `<sel>.q-g<N>.<tld>`, an optional `_<port>._<proto>` SRV prefix, where <sel> is an
// instance id, an index, `*`, or a `q-` filter label.
import type { Health, Instance } from './instance.ts';

export class CriteriaError extends Error {
  readonly code = 'FORMERR';
}

export type LabelPattern =
  | { kind: 'exact'; value: string }
  | { kind: 'prefix'; value: string }
  | { kind: 'suffix'; value: string }
  | { kind: 'any' };

/** `s` filter values: 0 smart, 1 unhealthy, 3 healthy, 4 all. */
export type HealthFilter = 0 | 1 | 3 | 4;

export interface Filters {
  azIds: number[];
  indexes: number[];
  numIds: number[];
  networkIds: number[];
  health: HealthFilter[];
}

export interface Criteria {
  domain: string;
  instanceId: string | null;
  filters: Filters;
  /** Long form: patterns for the three labels; short form: all null and `groupId` set. */
  group: LabelPattern | null;
  network: LabelPattern | null;
  deployment: LabelPattern | null;
  groupId: number | null;
  /** SRV prefix `_<service>._<proto>`; null when the name has none. */
  service: string | null;
}

// BOSH DNS's letters. There is no `g`: a group id is the short form's `q-g<N>` label, and
// BOSH answers `q-g2.q-g2.bosh` FORMERR (its filter label has no filter it knows).
const FILTER_KEYS: Partial<Record<string, keyof Filters>> = {
  a: 'azIds', i: 'indexes', m: 'numIds', n: 'networkIds', s: 'health',
};
const HEALTH_FILTERS = new Set([0, 1, 3, 4]);
const SHORT_FORM = /^q-g(\d+)$/;

export function emptyFilters(): Filters {
  return { azIds: [], indexes: [], numIds: [], networkIds: [], health: [] };
}

/** `q-a1i0s3` → filters; letters may repeat (OR within a letter, AND across letters). */
export function parseFilterLabel(label: string): Filters {
  const body = label.slice(2);
  if (body === '') throw new CriteriaError(`"${label}": a q- label needs at least one filter`);
  const filters = emptyFilters();
  const re = /([a-z])(\d+)/gy;
  let consumed = 0;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    const key = FILTER_KEYS[m[1]];
    if (!key) throw new CriteriaError(`"${label}": unknown filter letter "${m[1]}"`);
    const value = Number(m[2]);
    if (!Number.isSafeInteger(value)) throw new CriteriaError(`"${label}": filter value ${m[2]} is too large`);
    if (key === 'health' && !HEALTH_FILTERS.has(value)) throw new CriteriaError(`"${label}": health filter s${value} is not one of s0, s1, s3, s4`);
    (filters[key] as number[]).push(value);
    consumed = re.lastIndex;
  }
  if (consumed !== body.length) throw new CriteriaError(`"${label}": malformed filter at "${body.slice(consumed)}"`);
  return filters;
}

/**
 * `*`, `prefix*` and `*suffix` are globs; any other label — a `*` inside it too
 * (`m*l`) — is taken as it is, which names no group, so the answer is NXDOMAIN, as
 * BOSH DNS gives.
 */
export function parsePattern(label: string): LabelPattern {
  const stars = label.split('*').length - 1;
  if (label === '*') return { kind: 'any' };
  if (stars === 1 && label.endsWith('*')) return { kind: 'prefix', value: label.slice(0, -1) };
  if (stars === 1 && label.startsWith('*')) return { kind: 'suffix', value: label.slice(1) };
  return { kind: 'exact', value: label };
}

export function matchesPattern(pattern: LabelPattern, value: string): boolean {
  switch (pattern.kind) {
    case 'exact': return value === pattern.value;
    case 'prefix': return value.startsWith(pattern.value);
    case 'suffix': return value.endsWith(pattern.value);
    case 'any': return true;
  }
}

/** Whether a group's labels match the long form's three patterns (criteria without a `groupId`). */
export function matchesGroup(criteria: Criteria, group: string, network: string, deployment: string): boolean {
  const { group: groupPattern, network: networkPattern, deployment: deploymentPattern } = criteria;
  if (!groupPattern || !networkPattern || !deploymentPattern) {
    throw Object.assign(new Error('short-form criteria (q-g<N>) have no group patterns: select by groupId'), { code: 'SHORT_FORM_CRITERIA' });
  }
  return matchesPattern(groupPattern, group) && matchesPattern(networkPattern, network) && matchesPattern(deploymentPattern, deployment);
}

export interface ParseOptions {
  /** The question is for SRV: a bare `<group>.<network>.<deployment>` then names every instance. */
  srv?: boolean;
}

/**
 * Parses the labels of a name that precede its served domain (lower-case).
 * Throws CriteriaError (→ FORMERR) for a malformed name.
 */
export function parseCriteria(labels: string[], domain: string, options: ParseOptions = {}): Criteria {
  let rest = labels;
  let service: string | null = null;
  if (rest.length >= 2 && rest[0].startsWith('_') && rest[1].startsWith('_')) {
    service = rest[0].slice(1);
    if (rest[1] !== '_tcp' && rest[1] !== '_udp') throw new CriteriaError(`"${rest[1]}": SRV protocol must be _tcp or _udp`);
    rest = rest.slice(2);
  }
  // `_http._tcp.<group>.<network>.<deployment>` (or `…q-g<N>`) and an SRV question on the
  // group name itself name every instance of the group; for A/AAAA they stay a FORMERR.
  const groupOnly = rest.length === 3 || (rest.length === 1 && SHORT_FORM.test(rest[0]));
  if (groupOnly && (service !== null || options.srv)) rest = ['*', ...rest];
  const criteria: Criteria = {
    domain, instanceId: null, filters: emptyFilters(), group: null, network: null, deployment: null, groupId: null, service,
  };
  if (rest.length === 4) {
    criteria.group = parsePattern(rest[1]);
    criteria.network = parsePattern(rest[2]);
    criteria.deployment = parsePattern(rest[3]);
  } else if (rest.length === 2) {
    const short = SHORT_FORM.exec(rest[1]);
    if (!short) throw new CriteriaError(`"${rest.join('.')}": a two-label name must end in q-g<group id>`);
    criteria.groupId = Number(short[1]);
  } else {
    throw new CriteriaError(`expected 4 labels (<instance>.<group>.<network>.<deployment>) or 2 (<instance>.q-g<N>) before "${domain}", got ${rest.length}`);
  }
  const selector = rest[0];
  if (selector.startsWith('q-')) criteria.filters = parseFilterLabel(selector);
  else if (/^\d+$/.test(selector)) criteria.filters.indexes.push(Number(selector));
  else if (selector !== '*') criteria.instanceId = selector;
  return criteria;
}

function within(values: number[], value: number | null): boolean {
  return values.length === 0 || (value !== null && values.includes(value));
}

/** Every criterion except health (health decides NOERROR-empty, not NXDOMAIN). */
export function matchesInstance(criteria: Criteria, instance: Instance): boolean {
  const f = criteria.filters;
  return (
    (criteria.instanceId === null || criteria.instanceId === instance.id)
    && within(f.azIds, instance.azId)
    && within(f.indexes, instance.index)
    && within(f.numIds, instance.numId)
    && within(f.networkIds, instance.networkId)
    && (criteria.service === null || criteria.service in instance.ports)
  );
}

/**
 * Applies the `s` filters. With no health data in the topology at all (an unmodified
 * BOSH file), every instance counts as healthy, as BOSH DNS does with health checks off.
 */
export function applyHealth(filters: HealthFilter[], instances: Instance[], topologyHasHealth: boolean): Instance[] {
  const state = (i: Instance): Health => (topologyHasHealth ? (i.health ?? 'unchecked') : 'running');
  const wanted = filters.length ? filters : [0];
  const keep = new Set<Instance>();
  for (const f of wanted) {
    let chosen: Instance[];
    if (f === 4) chosen = instances;
    else if (f === 3) chosen = instances.filter((i) => state(i) === 'running');
    else if (f === 1) chosen = instances.filter((i) => state(i) === 'failing');
    else {
      const usable = instances.filter((i) => state(i) !== 'failing');
      chosen = usable.length ? usable : instances;
    }
    for (const i of chosen) keep.add(i);
  }
  return keep.size === instances.length ? instances : instances.filter((i) => keep.has(i));
}
