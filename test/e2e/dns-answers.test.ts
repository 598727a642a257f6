// End-to-end: the daemon started as a process, queried with real dig — every query form
// in docs/names.md, both families, the negative answers and the size rules.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addresses, dig, type DigResult } from '../helpers/dig.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { topologyJson, type TestInstance } from '../helpers/topology.ts';
import { required } from '../helpers/required.ts';

const BIG = 100;
const instances: TestInstance[] = [
  { id: 'web-0', ip: '10.0.0.1', index: 0, numId: 1, az: 'z1', azId: 1, health: 'running', ports: { http: 8080 }, agentId: 'agent-web-0' },
  { id: 'web-1', ip: '10.0.0.2', index: 1, numId: 2, az: 'z2', azId: 2, health: 'running', ports: { http: 8080 } },
  { id: 'web-2', ip: 'fd00::3', index: 2, numId: 3, az: 'z1', azId: 1, health: 'failing', ports: { http: 8080 } },
  { id: 'api-0', group: 'api', network: 'private', networkId: 2, deployment: 'cf-api', ip: '10.0.1.1', index: 0, numId: 4, groupIds: [2], health: 'unchecked', ports: { grpc: 9000 } },
  { id: 'db-0', group: 'db', ip: '10.0.2.1', index: 0, numId: 5, groupIds: [3], health: 'failing' },
  ...Array.from({ length: BIG }, (_, n): TestInstance => ({
    id: `big-${n}`, group: 'big', ip: `10.1.${n >> 8}.${n & 255}`, index: n, numId: 100 + n, groupIds: [9], health: 'running',
  })),
];

const aliases = {
  'web.service.internal': ['q-s0.web.default.cf.bosh'],
  '*.any.service.internal': ['*.api.private.cf-api.bosh'],
};

describe('platform names answered by the running daemon', () => {
  let daemon: RunningDaemon;
  const q = (name: string, type = 'A', options: string[] = []): Promise<DigResult> => dig(daemon.dnsPort, name, type, options);

  beforeAll(async () => {
    daemon = await startDaemon({
      files: {
        'topology.json': topologyJson(instances, { aliases }, 4),
        'aliases.d/instances.yaml': '_.web-instance.internal:\n  - _.web.default.cf.bosh\n',
      },
    });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
  });

  describe('query forms', () => {
    it('an instance by id, authoritatively, with the configured TTL', async () => {
      const r = await q('web-0.web.default.cf.bosh.');
      expect(r.status).toBe('NOERROR');
      expect(r.flags).toContain('aa');
      expect(r.answer).toEqual([{ name: 'web-0.web.default.cf.bosh.', ttl: 5, type: 'A', data: '10.0.0.1' }]);
    });

    it('an instance by index', async () => {
      expect(addresses(await q('1.web.default.cf.bosh.'))).toEqual(['10.0.0.2']);
    });

    it('"*": every instance of the group that passes the smart health filter', async () => {
      expect(addresses(await q('*.web.default.cf.bosh.'))).toEqual(['10.0.0.1', '10.0.0.2']);
    });

    it('q- filters: az, index (OR), num id, network id, health', async () => {
      expect(addresses(await q('q-a2.web.default.cf.bosh.'))).toEqual(['10.0.0.2']);
      expect(addresses(await q('q-i0i1.web.default.cf.bosh.'))).toEqual(['10.0.0.1', '10.0.0.2']);
      expect(addresses(await q('q-m1.web.default.cf.bosh.'))).toEqual(['10.0.0.1']);
      expect(addresses(await q('q-n2.*.*.*.bosh.'))).toEqual(['10.0.1.1']);
      expect(addresses(await q('q-s3a1.web.default.cf.bosh.'))).toEqual(['10.0.0.1']);
      expect(addresses(await q('q-s1.web.default.cf.bosh.', 'AAAA'))).toEqual(['fd00::3']);
      expect(addresses(await q('q-s4.web.default.cf.bosh.', 'AAAA'))).toEqual(['fd00::3']);
    });

    it('s0 answers every instance when none is healthy; s3 then answers NOERROR empty', async () => {
      expect(addresses(await q('q-s0.db.default.cf.bosh.'))).toEqual(['10.0.2.1']);
      const healthy = await q('q-s3.db.default.cf.bosh.');
      expect(healthy.status).toBe('NOERROR');
      expect(healthy.answer).toEqual([]);
    });

    it('the short form q-…q-g<N>', async () => {
      expect(addresses(await q('q-s0.q-g2.bosh.'))).toEqual(['10.0.1.1']);
      expect(addresses(await q('q-i1.q-g1.bosh.'))).toEqual(['10.0.0.2']);
      expect((await q('q-s0.q-g77.bosh.')).status).toBe('NXDOMAIN');
    });

    it('globs in the group, network and deployment labels', async () => {
      expect(addresses(await q('*.w*.default.cf.bosh.'))).toEqual(['10.0.0.1', '10.0.0.2']);
      expect(addresses(await q('*.*pi.*.*.bosh.'))).toEqual(['10.0.1.1']);
      expect(addresses(await q('q-s0.*.*.cf-*.bosh.'))).toEqual(['10.0.1.1']);
    });

    it('SRV for a named port: one per instance, target its name, the address in additional', async () => {
      const r = await q('_http._tcp.web.default.cf.bosh.', 'SRV');
      expect(r.answer.map((a) => a.data).sort()).toEqual([
        '0 1 8080 web-0.web.default.cf.bosh.', '0 1 8080 web-1.web.default.cf.bosh.',
      ]);
      expect(r.additional.map((a) => `${a.name} ${a.type} ${a.data}`).sort()).toEqual([
        'web-0.web.default.cf.bosh. A 10.0.0.1', 'web-1.web.default.cf.bosh. A 10.0.0.2',
      ]);
    });

    it('SRV with a filter reaches an IPv6 instance, with AAAA in additional', async () => {
      const r = await q('_http._tcp.q-s1.web.default.cf.bosh.', 'SRV');
      expect(r.answer.map((a) => a.data)).toEqual(['0 1 8080 web-2.web.default.cf.bosh.']);
      expect(r.additional.map((a) => `${a.type} ${a.data}`)).toEqual(['AAAA fd00::3']);
    });

    it('SRV on a group name lists every named port, in the long and the short form', async () => {
      const r = await q('api.private.cf-api.bosh.', 'SRV');
      expect(r.status).toBe('NOERROR');
      expect(r.answer.map((a) => a.data)).toEqual(['0 1 9000 api-0.api.private.cf-api.bosh.']);
      expect(r.additional.map((a) => a.data)).toEqual(['10.0.1.1']);
      expect((await q('_grpc._tcp.q-g2.bosh.', 'SRV')).answer.map((a) => a.data)).toEqual(['0 1 9000 api-0.api.private.cf-api.bosh.']);
      expect((await q('q-g2.bosh.', 'SRV')).answer).toHaveLength(1);
      expect((await q('q-g2.bosh.')).status).toBe('FORMERR');
    });

    it('PTR for v4 and v6 instance addresses', async () => {
      const v4 = await q('1.0.0.10.in-addr.arpa.', 'PTR');
      expect(v4.flags).toContain('aa');
      expect(v4.answer.map((a) => a.data).sort()).toEqual(['0.web.default.cf.bosh.', 'web-0.web.default.cf.bosh.']);
      const v6 = await dig(daemon.dnsPort, '-x', 'fd00::3');
      expect(v6.answer.map((a) => a.data).sort()).toEqual(['2.web.default.cf.bosh.', 'web-2.web.default.cf.bosh.']);
    });

    it('aliases from the file: exact and "*"', async () => {
      const exact = await q('web.service.internal.');
      expect(exact.flags).toContain('aa');
      expect(addresses(exact)).toEqual(['10.0.0.1', '10.0.0.2']);
      expect(addresses(await q('anything.any.service.internal.'))).toEqual(['10.0.1.1']);
    });

    it('aliases from the aliases directory with the "_" placeholder', async () => {
      expect(addresses(await q('web-1.web-instance.internal.'))).toEqual(['10.0.0.2']);
      expect(addresses(await q('2.web-instance.internal.', 'AAAA'))).toEqual(['fd00::3']);
      expect((await q('web-9.web-instance.internal.')).status).toBe('NXDOMAIN');
    });

    it('<agent_id>.bosh-agent-id.', async () => {
      expect(addresses(await q('agent-web-0.bosh-agent-id.'))).toEqual(['10.0.0.1']);
    });

    it('upcheck.presence-dns.', async () => {
      const r = await q('upcheck.presence-dns.');
      expect(r.status).toBe('NOERROR');
      expect(addresses(r)).toEqual(['127.0.0.1']);
    });
  });

  describe('families and negative answers', () => {
    it('A and AAAA answer their own family only', async () => {
      expect(addresses(await q('web-2.web.default.cf.bosh.', 'AAAA'))).toEqual(['fd00::3']);
      expect(addresses(await q('q-s4.web.default.cf.bosh.', 'A'))).toEqual(['10.0.0.1', '10.0.0.2']);
    });

    it('an unknown name: NXDOMAIN with the SOA', async () => {
      const r = await q('nope.web.default.cf.bosh.');
      expect(r.status).toBe('NXDOMAIN');
      expect(r.flags).toContain('aa');
      expect(r.authority).toEqual([{ name: 'bosh.', ttl: 5, type: 'SOA', data: 'ns.bosh. hostmaster.bosh. 4 3600 600 86400 5' }]);
    });

    it('a known name of the other family: NODATA (NOERROR, no answer) with the SOA', async () => {
      const r = await q('web-0.web.default.cf.bosh.', 'AAAA');
      expect(r.status).toBe('NOERROR');
      expect(r.answer).toEqual([]);
      expect(r.authority[0]?.type).toBe('SOA');
      const txt = await q('web-0.web.default.cf.bosh.', 'TXT');
      expect(txt.status).toBe('NOERROR');
      expect(txt.authority[0]?.type).toBe('SOA');
    });

    it('the bare domain: NXDOMAIN', async () => {
      expect((await q('bosh.')).status).toBe('NXDOMAIN');
    });

    it('FORMERR for a malformed q- label and a wrong label count', async () => {
      expect((await q('q-x1.web.default.cf.bosh.')).status).toBe('FORMERR');
      expect((await q('q-s2.web.default.cf.bosh.')).status).toBe('FORMERR');
      expect((await q('web.default.cf.bosh.')).status).toBe('FORMERR');
      expect((await q('a.b.c.d.e.bosh.')).status).toBe('FORMERR');
    });

    it('REFUSED for a name outside the served domains', async () => {
      const r = await q('example.com.');
      expect(r.status).toBe('REFUSED');
      expect(r.flags).not.toContain('aa');
    });
  });

  describe('case and size', () => {
    it('matches case-insensitively and echoes the question\'s case', async () => {
      const r = await q('WeB-0.WEB.Default.cf.BOSH.');
      expect(r.answer).toEqual([{ name: 'WeB-0.WEB.Default.cf.BOSH.', ttl: 5, type: 'A', data: '10.0.0.1' }]);
      const srv = await q('_HTTP._Tcp.Web.default.cf.bosh.', 'SRV');
      expect(srv.answer.every((a) => a.name === '_HTTP._Tcp.Web.default.cf.bosh.')).toBe(true);
      expect(srv.answer).toHaveLength(2);
    });

    it('a group too large for 512 bytes: TC over UDP without EDNS, some records, never more than fit', async () => {
      const r = await q('*.big.default.cf.bosh.', 'A', ['+noedns', '+ignore']);
      expect(r.flags).toContain('tc');
      expect(r.answer.length).toBeGreaterThan(0);
      expect(r.answer.length).toBeLessThan(BIG);
      expect(required(/MSG SIZE\s+rcvd: (\d+)/.exec(r.raw), 'the size dig received')[1]).toSatisfy((n: string) => Number(n) <= 512);
    });

    it('TC with an EDNS buffer of 512 too', async () => {
      const r = await q('*.big.default.cf.bosh.', 'A', ['+bufsize=512', '+ignore']);
      expect(r.flags).toContain('tc');
      expect(r.answer.length).toBeLessThan(BIG);
    });

    it('the whole group over TCP', async () => {
      const r = await q('*.big.default.cf.bosh.', 'A', ['+tcp']);
      expect(r.flags).not.toContain('tc');
      expect(r.answer).toHaveLength(BIG);
      expect(new Set(addresses(r)).size).toBe(BIG);
    });

    it('dig falls back to TCP on TC by itself and gets the whole group', async () => {
      const r = await q('*.big.default.cf.bosh.', 'A', ['+noedns']);
      expect(r.answer).toHaveLength(BIG);
    });

    it('shuffles a group\'s answers across queries', async () => {
      const orders = new Set<string>();
      for (let n = 0; n < 5; n++) orders.add((await q('*.big.default.cf.bosh.', 'A', ['+tcp'])).answer.map((a) => a.data).join(','));
      expect(orders.size).toBeGreaterThan(1);
    });
  });
});
