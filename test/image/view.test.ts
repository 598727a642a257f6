// Lookups on a compiled image (the view DNS answers from): group selection by exact key,
// glob and group id; PTR names; agent ids; and alias expansion (exact, `*`, `_`
// placeholder; file and config aliases).
import { describe, expect, it } from 'vitest';
import { parseCriteria } from '../../src/image/criteria.ts';
import { parseTopology, readAliases } from '../../src/control/reader.ts';
import type { AliasMap, Instance } from '../../src/image/instance.ts';
import { TopologyView } from '../../src/image/view.ts';
import { required } from '../helpers/required.ts';
import { topologyJson, type TestInstance } from '../helpers/topology.ts';
import { viewOf } from './views.ts';

function index(instances: TestInstance[], extra: Record<string, unknown> = {}, options: { domains?: string[]; aliases?: AliasMap } = {}): TopologyView {
  return viewOf(topologyJson(instances, extra, 9), options);
}

const fleet: TestInstance[] = [
  { id: 'web-a', ip: '10.0.0.1', index: 0, groupIds: [1], agentId: 'agent-a' },
  { id: 'web-b', ip: 'fd00::2', index: 1, groupIds: [1] },
  { id: 'api-a', group: 'api', ip: '10.0.1.1', index: 0, groupIds: [2], deployment: 'cf-2' },
  { id: 'db-a', group: 'db', ip: '10.0.2.1', index: 0, groupIds: [3], domain: 'internal.example.' },
];

describe('selecting instances', () => {
  const idx = index(fleet);
  const select = (name: string, domain = 'bosh') =>
    idx.select(parseCriteria(name.split('.'), domain)).map((i) => i.id).sort();

  it('counts records and knows the version and served domains', () => {
    expect(idx.version).toBe(9);
    expect(idx.recordCount).toBe(4);
    expect(idx.base.domains().sort()).toEqual(['bosh', 'internal.example']);
  });

  it('finds a group by its exact labels', () => {
    expect(select('*.web.default.cf')).toEqual(['web-a', 'web-b']);
    expect(select('web-b.web.default.cf')).toEqual(['web-b']);
    expect(select('*.web.default.cf-2')).toEqual([]);
  });

  it('finds groups by glob across deployments', () => {
    expect(select('*.*.default.cf*')).toEqual(['api-a', 'web-a', 'web-b']);
    expect(select('*.*eb.*.*')).toEqual(['web-a', 'web-b']);
    expect(select('*.a*.default.*')).toEqual(['api-a']);
  });

  it('finds a group by id in the short form, within its domain only', () => {
    expect(select('*.q-g1')).toEqual(['web-a', 'web-b']);
    expect(select('q-i1.q-g1')).toEqual(['web-b']);
    expect(select('*.q-g3')).toEqual([]);
    expect(select('*.q-g3', 'internal.example')).toEqual(['db-a']);
  });

  it('picks the longest served domain a name lies under', () => {
    const nested = index([...fleet, { id: 'x', ip: '10.9.9.9', domain: 'example.' }]);
    expect(nested.servedDomain('0.db.default.cf.internal.example')).toBe('internal.example');
    expect(nested.servedDomain('other.example')).toBe('example');
    expect(nested.servedDomain('example.com')).toBeNull();
  });

  it('serves configured domains that have no records yet', () => {
    expect(index(fleet, {}, { domains: ['empty.test'] }).servedDomain('a.empty.test')).toBe('empty.test');
  });

  it('finds instances by agent id', () => {
    expect(idx.instancesOfAgent('agent-a').map((i) => i.id)).toEqual(['web-a']);
    expect(idx.instancesOfAgent('nobody')).toEqual([]);
  });

  it('notices whether the topology carries any health data', () => {
    expect(idx.hasHealth).toBe(false);
    expect(index([{ id: 'h', ip: '10.0.0.1', health: 'failing' }]).hasHealth).toBe(true);
  });
});

describe('PTR names', () => {
  it('names an instance by id and by index when the file has no records list', () => {
    const idx = index(fleet);
    expect(idx.ptrNames('10.0.0.1')).toEqual(['web-a.web.default.cf.bosh', '0.web.default.cf.bosh']);
    expect(idx.ptrNames('fd00:0000:0000:0000:0000:0000:0000:0002')).toEqual(['web-b.web.default.cf.bosh', '1.web.default.cf.bosh']);
    expect(idx.ptrNames('10.9.9.9')).toEqual([]);
  });

  it('takes the names from BOSH\'s records list when the file has one', () => {
    const idx = index(fleet, { records: [['10.0.0.1', 'legacy.name.'], ['10.0.0.1', 'other.name.']] });
    expect(idx.ptrNames('10.0.0.1')).toEqual(['legacy.name', 'other.name']);
    expect(idx.ptrNames('10.0.1.1')).toEqual([]);
  });
});

describe('alias expansion', () => {
  const fileAliases = {
    'web.service.internal': ['q-s0.web.default.cf.bosh'],
    '*.any.internal': ['*.api.default.cf-2.bosh'],
    '_.one.internal': ['_.web.default.cf.bosh', 'fixed.target.bosh'],
  };

  it('expands an exact alias', () => {
    expect(index(fleet, { aliases: fileAliases }).aliasTargets('web.service.internal')).toEqual(['q-s0.web.default.cf.bosh']);
  });

  it('expands "*" for any one label, and only one', () => {
    const idx = index(fleet, { aliases: fileAliases });
    expect(idx.aliasTargets('whatever.any.internal')).toEqual(['*.api.default.cf-2.bosh']);
    expect(idx.aliasTargets('two.labels.any.internal')).toBeNull();
    expect(idx.aliasTargets('any.internal')).toBeNull();
  });

  it('copies the query\'s first label into a "_" target and leaves other targets alone', () => {
    expect(index(fleet, { aliases: fileAliases }).aliasTargets('web-b.one.internal'))
      .toEqual(['web-b.web.default.cf.bosh', 'fixed.target.bosh']);
  });

  it('prefers an exact alias over "*" and "*" over "_"', () => {
    const idx = index(fleet, {
      aliases: { 'x.p.internal': ['exact.bosh'], '*.p.internal': ['star.bosh'], '_.p.internal': ['_.under.bosh'] },
    });
    expect(idx.aliasTargets('x.p.internal')).toEqual(['exact.bosh']);
    expect(idx.aliasTargets('y.p.internal')).toEqual(['star.bosh']);
  });

  it('merges aliases from config files with the file\'s own for the same name', () => {
    const warnings: string[] = [];
    const fromDir = readAliases({ 'web.service.internal': ['1.web.default.cf.bosh'], 'db.internal': ['*.db.default.cf.internal.example'] }, warnings);
    expect(warnings).toEqual([]);
    const idx = index(fleet, { aliases: fileAliases }, { aliases: fromDir });
    expect(idx.aliasTargets('web.service.internal')).toEqual(['1.web.default.cf.bosh', 'q-s0.web.default.cf.bosh']);
    expect(idx.aliasTargets('db.internal')).toEqual(['*.db.default.cf.internal.example']);
  });

  it('answers null for a name that is no alias', () => {
    expect(index(fleet, { aliases: fileAliases }).aliasTargets('web.default.cf.bosh')).toBeNull();
  });
});

describe('deltas', () => {
  /** A small deterministic generator, so a failure names a seed that reproduces it. */
  function random(seed: number): () => number {
    let s = seed;
    return () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return s / 2147483648;
    };
  }

  function instance(rand: () => number, n: number): TestInstance {
    const pick = <T>(list: T[]) => list[Math.floor(rand() * list.length)];
    return {
      id: `i${n}`,
      group: pick(['web', 'api', 'db']),
      deployment: pick(['cf', 'cf-2']),
      domain: pick(['bosh.', 'bosh.', 'internal.example.']),
      ip: rand() < 0.2 ? `fd00::${n.toString(16)}` : `10.${n >> 8 & 255}.${n & 255}.${Math.floor(rand() * 4) + 1}`,
      index: Math.floor(rand() * 4),
      groupIds: [Math.floor(rand() * 3) + 1],
      azId: Math.floor(rand() * 2) + 1,
      agentId: rand() < 0.3 ? pick(['agent-x', 'agent-y']) : undefined,
      health: pick(['running', 'failing', 'unchecked', undefined] as const),
      ports: rand() < 0.5 ? { http: 8080 } : undefined,
    };
  }

  const QUERIES = [
    '*.web.default.cf', '*.api.default.cf-2', 'q-s0.web.default.cf', 'q-i1.db.default.cf', 'q-a1s3.web.default.cf-2', '2.api.default.cf',
    'i3.web.default.cf', 'i7.db.default.cf-2', '*.*.default.cf*', '*.w*.default.*', '*.q-g1', 'q-i0.q-g2', '*.q-g3',
  ];

  /** Everything a resolver can ask, order-free (a delta's instances come after the image's). */
  function answers(view: TopologyView) {
    const sorted = (list: Array<{ id: string; ip: string }>) => list.map((i) => `${i.id}@${i.ip}`).sort();
    const out: Record<string, unknown> = { records: view.recordCount, health: view.hasHealth };
    for (const domain of ['bosh', 'internal.example']) {
      out[`served ${domain}`] = view.servedDomain(`x.${domain}`);
      for (const q of QUERIES) out[`${q}.${domain}`] = sorted(view.select(parseCriteria(q.split('.'), domain)));
    }
    for (let n = 0; n < 60; n++) {
      for (const ip of [`10.0.${n}.1`, `10.0.${n}.2`, `fd00:0000:0000:0000:0000:0000:0000:${n.toString(16).padStart(4, '0')}`]) {
        const names = view.ptrNames(ip).sort();
        if (names.length) out[`ptr ${ip}`] = names;
      }
    }
    for (const agent of ['agent-x', 'agent-y']) out[`agent ${agent}`] = sorted(view.instancesOfAgent(agent));
    return out;
  }

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('random deltas on an image answer as an image built from the end state (seed %i)', (seed) => {
    const rand = random(seed);
    const live = new Map<string, TestInstance>();
    for (let n = 0; n < 30; n++) live.set(`i${n}`, instance(rand, n));
    const view = index([...live.values()]);
    let next = 30;
    for (let seq = 1; seq <= 40; seq++) {
      const removes: string[] = [];
      const adds: TestInstance[] = [];
      // A delta names each instance once (the syncer folds a page's rows per id).
      const touched = new Set<string>();
      for (let k = Math.floor(rand() * 4); k >= 0; k--) {
        const roll = rand();
        const ids = [...live.keys()].filter((id) => !touched.has(id));
        if (roll < 0.3 && ids.length) {
          const id = ids[Math.floor(rand() * ids.length)];
          touched.add(id);
          removes.push(nameOf(required(live.get(id), `live instance ${id}`)));
          live.delete(id);
        } else if (roll < 0.7 && ids.length) {
          // Changed in place, possibly moved to another group or domain (a new name).
          const id = ids[Math.floor(rand() * ids.length)];
          touched.add(id);
          const moved = { ...instance(rand, Number(id.slice(1))), id };
          removes.push(nameOf(required(live.get(id), `live instance ${id}`)));
          live.set(id, moved);
          adds.push(moved);
        } else {
          const added = instance(rand, next++);
          touched.add(added.id);
          live.set(added.id, added);
          adds.push(added);
        }
      }
      view.apply({ seq, version: 100 + seq, removes, adds: adds.map(toInstance) });
    }
    expect(view.version).toBe(140);
    expect(answers(view)).toEqual(answers(index([...live.values()])));
  });

  it('names what each delta changed, and when it changes every answer', () => {
    const view = index([{ id: 'a', ip: '10.0.0.1' }, { id: 'b', ip: '10.0.0.2' }]);
    const a = required(view.get('a.web.default.cf.bosh'), 'instance a');
    const change = view.apply({ seq: 1, version: 2, removes: [], adds: [{ ...a, ip: '10.0.0.9' }] });
    expect(change.instances.map((i) => i.ip).sort()).toEqual(['10.0.0.1', '10.0.0.9']);
    expect(change.everything).toBe(false);
    // The first instance with health data: the smart filter means something else now.
    expect(view.apply({ seq: 2, version: 3, removes: [], adds: [{ ...a, health: 'failing' }] }).everything).toBe(true);
    // A domain appears.
    expect(view.apply({ seq: 3, version: 4, removes: [], adds: [{ ...a, id: 'c', domain: 'new.example' }] }).everything).toBe(true);
    expect(view.servedDomain('x.new.example')).toBe('new.example');
    // ... and goes with its last instance.
    expect(view.apply({ seq: 4, version: 5, removes: ['c.web.default.cf.new.example'], adds: [] }).everything).toBe(true);
    expect(view.servedDomain('x.new.example')).toBeNull();
  });
});

function nameOf(i: TestInstance): string {
  return `${i.id}.${i.group ?? 'web'}.${i.network ?? 'default'}.${i.deployment ?? 'cf'}.${(i.domain ?? 'bosh.').replace(/\.$/, '')}`;
}

/** The instance a test row becomes once read (as the reader would produce it). */
function toInstance(i: TestInstance): Instance {
  const read = parseTopology(topologyJson([i]));
  if (!read.ok || read.topology.instances.length !== 1) throw new Error(`bad test instance ${JSON.stringify(i)}`);
  return read.topology.instances[0];
}
