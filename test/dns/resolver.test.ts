// The platform resolver as a pure function: name + type → rcode, records and flags
// (the response rules for platform names), checked without sockets.
import { describe, expect, it } from 'vitest';
import { PlatformResolver } from '../../src/dns/resolver.ts';
import { Rcode, RRType, type DnsResult, type ResourceRecord } from '../../src/codec/index.ts';
import { required } from '../helpers/required.ts';
import { topologyJson } from '../helpers/topology.ts';
import { viewOf } from '../image/views.ts';

const index = viewOf(topologyJson([
  { id: 'web-a', ip: '10.0.0.1', index: 0, health: 'running', ports: { http: 8080 }, agentId: 'agent-a' },
  { id: 'web-b', ip: 'fd00::2', index: 1, health: 'running', ports: { http: 8080, admin: 9090 } },
  { id: 'web-c', ip: '10.0.0.3', index: 2, health: 'failing' },
  { id: 'db-a', group: 'db', ip: '10.0.1.1', index: 0, groupIds: [2], health: 'failing' },
], { aliases: { 'loop.internal': ['loop.internal'], 'web.internal': ['q-s0.web.default.cf.bosh', 'missing.web.default.cf.bosh'] } }, 11), { domains: ['empty.test'] });
const resolver = new PlatformResolver({ ttl: 5, negativeTtl: 30 });

function ask(name: string, type: number = RRType.A, klass = 1): DnsResult {
  const r = resolver.resolve(index, { name, type, class: klass }).result;
  if (!r) throw new Error(`${name} was not answered as a platform name`);
  return r;
}

const data = (records: ResourceRecord[]) =>
  records.map((r) => ('address' in r ? r.address : 'target' in r ? `${'port' in r ? `${r.port} ` : ''}${r.target}` : r.type)).sort();

describe('PlatformResolver', () => {
  it('answers a group authoritatively with the positive TTL', () => {
    const r = ask('q-s0.web.default.cf.bosh');
    expect(r).toMatchObject({ rcode: Rcode.NOERROR, authoritative: true, authority: [] });
    expect(data(r.answers)).toEqual(['10.0.0.1']);
    expect(r.answers.every((a) => a.ttl === 5 && a.name === 'q-s0.web.default.cf.bosh')).toBe(true);
  });

  it('keeps the question\'s case in the owner name', () => {
    expect(ask('Web-A.WEB.default.cf.Bosh').answers[0].name).toBe('Web-A.WEB.default.cf.Bosh');
  });

  it('answers NXDOMAIN with the zone SOA (negative TTL, serial = version) for an unknown name', () => {
    const r = ask('nobody.web.default.cf.bosh');
    expect(r.rcode).toBe(Rcode.NXDOMAIN);
    expect(r.answers).toEqual([]);
    expect(r.authority).toEqual([{
      name: 'bosh', ttl: 30, type: RRType.SOA, mname: 'ns.bosh', rname: 'hostmaster.bosh',
      serial: 11, refresh: 3600, retry: 600, expire: 86400, minimum: 30,
    }]);
  });

  it('answers NXDOMAIN for the bare domain and for a configured domain without records', () => {
    expect(ask('bosh').rcode).toBe(Rcode.NXDOMAIN);
    expect(ask('x.web.default.cf.empty.test').authority[0]).toMatchObject({ name: 'empty.test', type: RRType.SOA });
  });

  it('answers NODATA with the SOA for a name of the other family or another type', () => {
    for (const [name, type] of [['web-a.web.default.cf.bosh', RRType.AAAA], ['web-b.web.default.cf.bosh', RRType.A], ['web-a.web.default.cf.bosh', RRType.TXT]] as const) {
      const r = ask(name, type);
      expect(r.rcode).toBe(Rcode.NOERROR);
      expect(r.answers).toEqual([]);
      expect(r.authority[0].type).toBe(RRType.SOA);
    }
  });

  it('answers NOERROR empty when the health filter leaves nothing', () => {
    const r = ask('q-s3.db.default.cf.bosh');
    expect(r.rcode).toBe(Rcode.NOERROR);
    expect(r.answers).toEqual([]);
  });

  it('answers every instance for s0 when none is healthy', () => {
    expect(data(ask('q-s0.db.default.cf.bosh').answers)).toEqual(['10.0.1.1']);
  });

  it('answers FORMERR for a malformed q- label and a wrong label count', () => {
    expect(ask('q-z9.web.default.cf.bosh').rcode).toBe(Rcode.FORMERR);
    expect(ask('web.default.cf.bosh').rcode).toBe(Rcode.FORMERR);
  });

  it('answers both families for ANY', () => {
    expect(data(ask('*.web.default.cf.bosh', RRType.ANY).answers)).toEqual(['10.0.0.1', 'fd00:0000:0000:0000:0000:0000:0000:0002']);
  });

  it('answers SRV with one record per named port and the addresses in additional', () => {
    const r = ask('web.default.cf.bosh', RRType.SRV);
    expect(data(r.answers)).toEqual(['8080 web-a.web.default.cf.bosh', '8080 web-b.web.default.cf.bosh', '9090 web-b.web.default.cf.bosh']);
    expect(r.additional.map((x) => [x.name, x.type]).sort()).toEqual([
      ['web-a.web.default.cf.bosh', RRType.A], ['web-b.web.default.cf.bosh', RRType.AAAA],
    ]);
    expect(data(ask('_admin._tcp.web.default.cf.bosh', RRType.SRV).answers)).toEqual(['9090 web-b.web.default.cf.bosh']);
  });

  it('answers PTR for v4 and v6 instance addresses, and leaves other addresses alone', () => {
    expect(data(ask('1.0.0.10.in-addr.arpa', RRType.PTR).answers)).toEqual(['0.web.default.cf.bosh', 'web-a.web.default.cf.bosh']);
    const v6 = `2.0.0.0.${Array.from({ length: 26 }, () => '0').join('.')}.d.f.ip6.arpa`;
    expect(data(ask(v6, RRType.PTR).answers)).toEqual(['1.web.default.cf.bosh', 'web-b.web.default.cf.bosh']);
    expect(resolver.resolve(index, { name: '9.9.9.10.in-addr.arpa', type: RRType.PTR, class: 1 }).result).toBeNull();
  });

  it('expands aliases, ignoring targets that do not exist and stopping alias loops', () => {
    expect(data(ask('web.internal').answers)).toEqual(['10.0.0.1']);
    expect(ask('loop.internal').rcode).toBe(Rcode.NXDOMAIN);
  });

  it('answers agent ids and the self check', () => {
    expect(data(ask('Agent-A.bosh-agent-id').answers)).toEqual(['10.0.0.1']);
    expect(ask('nobody.bosh-agent-id').rcode).toBe(Rcode.NXDOMAIN);
    expect(data(ask('upcheck.presence-dns').answers)).toEqual(['127.0.0.1']);
    expect(ask('upcheck.presence-dns', RRType.AAAA)).toMatchObject({ rcode: Rcode.NOERROR, answers: [] });
  });

  it('draws the same records in another order from one lookup, only where there are two or more to order', () => {
    const srv = resolver.resolve(index, { name: 'web.default.cf.bosh', type: RRType.SRV, class: 1 });
    const first = required(srv.result, 'an SRV result');
    const reorder = required(srv.reorder, 'a reorder of the SRV records');
    const orders = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const again = reorder();
      expect(data(again.answers)).toEqual(data(first.answers));
      expect(data(again.additional)).toEqual(data(first.additional));
      // An instance's SRV records stay together, in the order of its addresses in additional.
      const targets = again.answers.map((r) => ('target' in r ? r.target : '')).filter((t, n, all) => t !== all[n - 1]);
      expect(targets).toEqual(again.additional.map((r) => r.name));
      orders.add(targets.join(','));
    }
    expect(orders.size).toBe(2);
    expect(resolver.resolve(index, { name: '*.web.default.cf.bosh', type: RRType.ANY, class: 1 }).reorder).not.toBeNull();
    expect(resolver.resolve(index, { name: 'q-s0.web.default.cf.bosh', type: RRType.A, class: 1 }).reorder).toBeNull();
    expect(resolver.resolve(index, { name: 'nobody.web.default.cf.bosh', type: RRType.A, class: 1 }).reorder).toBeNull();
    expect(resolver.resolve(index, { name: '1.0.0.10.in-addr.arpa', type: RRType.PTR, class: 1 }).reorder).toBeNull();
  });

  it('leaves names outside the served domains and other classes to the next handler', () => {
    expect(resolver.resolve(index, { name: 'example.com', type: RRType.A, class: 1 }).result).toBeNull();
    expect(resolver.resolve(index, { name: 'web-a.web.default.cf.bosh', type: RRType.A, class: 3 }).result).toBeNull();
  });
});
