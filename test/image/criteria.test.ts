// The q- query language: names parsed into criteria, criteria matched against instances,
// and the health filters BOSH DNS defines (docs/names.md).
import { describe, expect, it } from 'vitest';
import {
  applyHealth, CriteriaError, matchesInstance, matchesPattern, parseCriteria, parseFilterLabel, parsePattern,
  type Criteria,
} from '../../src/image/criteria.ts';
import type { Health, Instance } from '../../src/image/instance.ts';

function instance(over: Partial<Instance> = {}): Instance {
  return {
    id: 'id-1', numId: 1, group: 'web', groupIds: [1], network: 'default', networkId: 1, deployment: 'cf',
    az: 'z1', azId: 1, index: 0, ip: '10.0.0.1', family: 4, domain: 'bosh', agentId: null, cellId: null,
    health: null, ports: {}, ...over,
  };
}

const parse = (name: string, srv = false): Criteria => parseCriteria(name.split('.'), 'bosh', { srv });

function formerr(name: string, srv = false): string {
  try {
    parse(name, srv);
  } catch (err) {
    expect(err).toBeInstanceOf(CriteriaError);
    expect((err as CriteriaError).code).toBe('FORMERR');
    return (err as Error).message;
  }
  throw new Error(`${name} parsed, expected FORMERR`);
}

describe('q- filter labels', () => {
  it('reads every letter into its own filter', () => {
    expect(parseFilterLabel('q-a1i2m3n4s3')).toEqual({
      azIds: [1], indexes: [2], numIds: [3], networkIds: [4], health: [3],
    });
  });

  it('collects a repeated letter as alternatives (OR)', () => {
    const f = parseFilterLabel('q-a1a2i0i7s0s4');
    expect(f.azIds).toEqual([1, 2]);
    expect(f.indexes).toEqual([0, 7]);
    expect(f.health).toEqual([0, 4]);
  });

  it.each([
    ['q-', 'at least one filter'],
    ['q-x1', 'unknown filter letter "x"'],
    // BOSH has no g filter: a group id is only ever the short form's q-g<N> label.
    ['q-g2', 'unknown filter letter "g"'],
    ['q-a', 'malformed filter at "a"'],
    ['q-a1b', 'malformed filter at "b"'],
    ['q-1', 'malformed filter at "1"'],
    ['q-s2', 's2 is not one of'],
    ['q-a1-', 'malformed filter at "-"'],
    ['q-a99999999999999999999', 'too large'],
  ])('rejects %s (%s)', (label, message) => {
    expect(() => parseFilterLabel(label)).toThrow(CriteriaError);
    expect(() => parseFilterLabel(label)).toThrow(message);
  });
});

describe('glob patterns', () => {
  it('accepts exact, "*", "pre*" and "*suf"', () => {
    expect(parsePattern('web')).toEqual({ kind: 'exact', value: 'web' });
    expect(parsePattern('*')).toEqual({ kind: 'any' });
    expect(parsePattern('we*')).toEqual({ kind: 'prefix', value: 'we' });
    expect(parsePattern('*eb')).toEqual({ kind: 'suffix', value: 'eb' });
  });

  it.each(['w*b', '**', '*e*', 'w**', '*w*b'])('takes %s as it is (it names no group: NXDOMAIN, as BOSH DNS)', (label) => {
    expect(parsePattern(label)).toEqual({ kind: 'exact', value: label });
    expect(matchesPattern(parsePattern(label), 'web')).toBe(false);
  });

  it('matches what each kind promises', () => {
    expect(matchesPattern(parsePattern('web'), 'web')).toBe(true);
    expect(matchesPattern(parsePattern('web'), 'web2')).toBe(false);
    expect(matchesPattern(parsePattern('we*'), 'web-api')).toBe(true);
    expect(matchesPattern(parsePattern('we*'), 'api-web')).toBe(false);
    expect(matchesPattern(parsePattern('*eb'), 'api-web')).toBe(true);
    expect(matchesPattern(parsePattern('*eb'), 'web-api')).toBe(false);
    expect(matchesPattern(parsePattern('*'), 'anything')).toBe(true);
  });
});

describe('names into criteria', () => {
  it('reads an instance id in the long form', () => {
    const c = parse('id-1.web.default.cf');
    expect(c.instanceId).toBe('id-1');
    expect(c.group).toEqual({ kind: 'exact', value: 'web' });
    expect(c.network).toEqual({ kind: 'exact', value: 'default' });
    expect(c.deployment).toEqual({ kind: 'exact', value: 'cf' });
    expect(c.groupId).toBeNull();
    expect(c.service).toBeNull();
  });

  it('reads a number as an instance index, "*" as every instance', () => {
    expect(parse('3.web.default.cf').filters.indexes).toEqual([3]);
    expect(parse('3.web.default.cf').instanceId).toBeNull();
    const all = parse('*.web.default.cf');
    expect(all.instanceId).toBeNull();
    expect(all.filters.indexes).toEqual([]);
  });

  it('reads globs in the group, network and deployment labels', () => {
    const c = parse('q-s0.we*.*.*f');
    expect(c.group).toEqual({ kind: 'prefix', value: 'we' });
    expect(c.network).toEqual({ kind: 'any' });
    expect(c.deployment).toEqual({ kind: 'suffix', value: 'f' });
  });

  it('reads the short form q-…q-g<N>', () => {
    const c = parse('q-a1s3.q-g12');
    expect(c.groupId).toBe(12);
    expect(c.group).toBeNull();
    expect(c.filters.azIds).toEqual([1]);
    expect(c.filters.health).toEqual([3]);
    expect(parse('*.q-g2').groupId).toBe(2);
  });

  it('treats q-g<N> in the group position of the long form as a plain group name', () => {
    const c = parse('q-s0.q-g1.default.cf');
    expect(c.groupId).toBeNull();
    expect(c.group).toEqual({ kind: 'exact', value: 'q-g1' });
  });

  it('reads an SRV prefix, with and without an instance label', () => {
    const group = parse('_http._tcp.web.default.cf');
    expect(group.service).toBe('http');
    expect(group.instanceId).toBeNull();
    expect(group.group).toEqual({ kind: 'exact', value: 'web' });
    const filtered = parse('_http._udp.q-i0.web.default.cf');
    expect(filtered.service).toBe('http');
    expect(filtered.filters.indexes).toEqual([0]);
  });

  it('reads a bare group name as every instance only for an SRV question', () => {
    expect(parse('web.default.cf', true).group).toEqual({ kind: 'exact', value: 'web' });
    expect(parse('q-g4', true).groupId).toBe(4);
    expect(parse('_http._tcp.q-g4').groupId).toBe(4);
    expect(formerr('web.default.cf')).toContain('got 3');
    expect(formerr('q-g4')).toContain('got 1');
  });

  it.each([
    ['web', 'got 1'],
    ['web.default.cf', 'got 3'],
    ['a.b.c.d.e', 'got 5'],
    ['x.web', 'must end in q-g<group id>'],
    ['x.q-gx', 'must end in q-g<group id>'],
    ['q-x1.web.default.cf', 'unknown filter letter'],
    ['q-g2.q-g2', 'unknown filter letter "g"'],
    ['_http._sctp.web.default.cf', 'SRV protocol must be _tcp or _udp'],
    ['_http._tcp.a.b', 'must end in q-g'],
  ])('answers FORMERR for %s (%s)', (name, message) => {
    expect(formerr(name)).toContain(message);
  });
});

describe('matching instances', () => {
  const web0 = instance();
  const web1 = instance({ id: 'id-2', numId: 2, index: 1, azId: 2, networkId: 2, groupIds: [1, 7], ports: { http: 8080 } });

  const matches = (name: string) => [web0, web1].filter((i) => matchesInstance(parse(name), i)).map((i) => i.id);

  it('applies each filter letter', () => {
    expect(matches('q-a2.web.default.cf')).toEqual(['id-2']);
    expect(matches('q-i0.web.default.cf')).toEqual(['id-1']);
    expect(matches('q-m2.web.default.cf')).toEqual(['id-2']);
    expect(matches('q-n1.web.default.cf')).toEqual(['id-1']);
  });

  it('ORs a repeated letter and ANDs different letters', () => {
    expect(matches('q-i0i1.web.default.cf')).toEqual(['id-1', 'id-2']);
    expect(matches('q-i0i1a2.web.default.cf')).toEqual(['id-2']);
    expect(matches('q-i0a2.web.default.cf')).toEqual([]);
  });

  it('matches by id and by index', () => {
    expect(matches('id-2.web.default.cf')).toEqual(['id-2']);
    expect(matches('1.web.default.cf')).toEqual(['id-2']);
    expect(matches('*.web.default.cf')).toEqual(['id-1', 'id-2']);
  });

  it('keeps only instances with the named port for an SRV prefix', () => {
    expect(matches('_http._tcp.web.default.cf')).toEqual(['id-2']);
    expect(matches('_grpc._tcp.web.default.cf')).toEqual([]);
  });

  it('never matches a filter on a value the instance lacks', () => {
    const bare = instance({ azId: null, index: null, numId: null });
    expect(matchesInstance(parse('q-a1.web.default.cf'), bare)).toBe(false);
    expect(matchesInstance(parse('q-s0.web.default.cf'), bare)).toBe(true);
  });
});

describe('health filters', () => {
  const of = (...states: Array<Health | null>) => states.map((health, n) => instance({ id: `i${n}`, health }));
  const ids = (list: Instance[]) => list.map((i) => i.id);
  const mixed = of('running', 'failing', 'unchecked');

  it('s0 (smart, the default) keeps healthy and unchecked', () => {
    expect(ids(applyHealth([0], mixed, true))).toEqual(['i0', 'i2']);
    expect(ids(applyHealth([], mixed, true))).toEqual(['i0', 'i2']);
  });

  it('s0 answers with every instance when none is healthy', () => {
    expect(ids(applyHealth([0], of('failing', 'failing'), true))).toEqual(['i0', 'i1']);
  });

  it('s1 keeps the failing, s3 the running, s4 all', () => {
    expect(ids(applyHealth([1], mixed, true))).toEqual(['i1']);
    expect(ids(applyHealth([3], mixed, true))).toEqual(['i0']);
    expect(ids(applyHealth([4], mixed, true))).toEqual(['i0', 'i1', 'i2']);
  });

  it('ORs repeated s filters', () => {
    expect(ids(applyHealth([1, 3], mixed, true))).toEqual(['i0', 'i1']);
  });

  it('leaves nothing when nothing has the wanted health (NOERROR empty, not NXDOMAIN)', () => {
    expect(applyHealth([1], of('running'), true)).toEqual([]);
  });

  it('counts a row without health as unchecked in a topology that has health data', () => {
    const list = of('running', null);
    expect(ids(applyHealth([3], list, true))).toEqual(['i0']);
    expect(ids(applyHealth([0], list, true))).toEqual(['i0', 'i1']);
  });

  it('counts every instance as healthy in a topology without any health data', () => {
    const bosh = of(null, null);
    expect(ids(applyHealth([3], bosh, false))).toEqual(['i0', 'i1']);
    expect(applyHealth([1], bosh, false)).toEqual([]);
    expect(ids(applyHealth([0], bosh, false))).toEqual(['i0', 'i1']);
  });
});
