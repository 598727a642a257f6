// Lookups on a compiled image (the view DNS answers from): group selection by exact key,
// glob and group id; PTR names; agent ids; and alias expansion (exact, `*`, `_`
// placeholder; file and config aliases).
import { describe, expect, it } from 'vitest';
import { parseCriteria } from '../../src/topology/criteria.ts';
import { parseTopology, readAliases } from '../../src/topology/reader.ts';
import type { AliasMap } from '../../src/topology/types.ts';
import { TopologyView } from '../../src/topology/view.ts';
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
