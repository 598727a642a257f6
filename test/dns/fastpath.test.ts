// The fast path must be invisible: for every query form, the bytes it sends are the
// bytes the general path (decode → resolver → encoder) sends for the same packet, and
// the topology image answers byte for byte what the first version's index answered (the
// reference). The resolver's shuffle is pinned to "no swap" so every order agrees;
// rotation of the pre-shuffled ring is checked on its own with a seeded sequence.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Registry } from '../../src/admin/metrics.ts';
import { AnswerCache, allocateAnswerCache } from '../../src/dns/answer-cache.ts';
import { FastPath } from '../../src/dns/fastpath.ts';
import { DnsHandler, type Transport } from '../../src/dns/handler.ts';
import { RRType } from '../../src/codec/index.ts';
import { tagsOf } from '../../src/image/cache-tags.ts';
import { parseTopology } from '../../src/control/reader.ts';
import type { TopologyLookup, TopologyView } from '../../src/image/view.ts';
import { topologyJson, type TestInstance } from '../helpers/topology.ts';
import { ReferenceIndex } from '../image/reference-index.ts';
import { viewOf } from '../image/views.ts';
import { buildQuery } from './client.ts';

const UDP_CLIENT = { address: '127.0.0.1', port: 53000, transport: 'udp' } as const;

interface QueryOptions {
  id?: number;
  /** EDNS UDP size; null sends no OPT record. */
  edns?: number | null;
  ednsVersion?: number;
  rd?: boolean;
  cd?: boolean;
  opcode?: number;
}

/** A query as dig sends it: with EDNS, the OPT record carries a cookie option, which the fast path must ignore. */
function query(name: string, type: number, o: QueryOptions = {}): Buffer {
  const flags = ((o.opcode ?? 0) << 11) | (o.rd === false ? 0 : 0x0100) | (o.cd ? 0x0010 : 0);
  const packet = buildQuery(name, { id: o.id, flags, type, edns: o.edns == null ? undefined : { udpSize: o.edns, version: o.ednsVersion } });
  if (o.edns == null) return packet;
  const cookie = Buffer.alloc(12);
  cookie.writeUInt16BE(10, 0);
  cookie.writeUInt16BE(8, 2);
  packet.writeUInt16BE(cookie.length, packet.length - 2);
  return Buffer.concat([packet, cookie]);
}

const instances: TestInstance[] = [
  { id: 'aaaa-1', ip: '10.0.0.1', index: 0, health: 'running', agentId: 'agent-1', ports: { http: 8080 }, groupIds: [1] },
  { id: 'aaaa-2', ip: '10.0.0.2', index: 1, health: 'running', ports: { http: 8080, admin: 9000 }, groupIds: [1] },
  { id: 'aaaa-3', ip: '10.0.0.3', index: 2, health: 'failing', ports: { http: 8080 }, groupIds: [1] },
  { id: 'six-1', group: 'v6', ip: 'fd00::1', index: 0, health: 'running', groupIds: [2] },
  // Enough instances that a group answer does not fit in 512 bytes.
  ...Array.from({ length: 60 }, (_, n): TestInstance => ({ id: `big-${n}`, group: 'big', ip: `10.1.0.${n + 1}`, index: n, groupIds: [3] })),
];
const aliases = {
  'db.service.internal': ['*.web.default.cf.bosh.'],
  '*.wild.internal': ['q-s3.web.default.cf.bosh'],
  '_.ph.internal': ['_.web.default.cf.bosh'],
};

function buildIndex(list: TestInstance[], version: number): TopologyView {
  return viewOf(topologyJson(list, { aliases }, version));
}

function referenceIndex(list: TestInstance[], version: number): ReferenceIndex {
  const read = parseTopology(topologyJson(list, { aliases }, version));
  if (!read.ok) throw new Error(read.error);
  return new ReferenceIndex(read.topology);
}

const v6Reverse = `${['1', ...'0'.repeat(27)].join('.')}.0.0.d.f.ip6.arpa`;
const PLATFORM_FORMS: Array<[string, number]> = [
  ['aaaa-1.web.default.cf.bosh', RRType.A],
  ['1.web.default.cf.bosh', RRType.A],
  ['*.web.default.cf.bosh', RRType.A],
  ['*.web.default.cf.bosh', RRType.ANY],
  ['q-s3.web.default.cf.bosh', RRType.A],
  ['q-a1i0i1.web.default.cf.bosh', RRType.A],
  ['q-s1.web.default.cf.bosh', RRType.A],
  ['q-s0.q-g1.bosh', RRType.A],
  ['q-i0.q-g2.bosh', RRType.AAAA],
  ['*.web.*.cf.bosh', RRType.A],
  ['_http._tcp.web.default.cf.bosh', RRType.SRV],
  ['_admin._tcp.q-s0.web.default.cf.bosh', RRType.SRV],
  ['*.web.default.cf.bosh', RRType.SRV],
  ['1.0.0.10.in-addr.arpa', RRType.PTR],
  [v6Reverse, RRType.PTR],
  ['six-1.v6.default.cf.bosh', RRType.AAAA],
  ['db.service.internal', RRType.A],
  ['anything.wild.internal', RRType.A],
  ['aaaa-2.ph.internal', RRType.A],
  ['agent-1.bosh-agent-id', RRType.A],
  ['upcheck.presence-dns', RRType.A],
  ['nope.web.default.cf.bosh', RRType.A],
  ['bosh', RRType.A],
  ['aaaa-1.web.default.cf.bosh', RRType.AAAA],
  ['aaaa-1.web.default.cf.bosh', RRType.MX],
  ['q-zz9.web.default.cf.bosh', RRType.A],
  ['a.b.bosh', RRType.A],
  ['*.big.default.cf.bosh', RRType.A],
  ['_http._tcp.q-s4.big.default.cf.bosh', RRType.SRV],
];

function cases(name: string): string[] {
  const mixed = name.split('').map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('');
  return [name, name.toUpperCase(), mixed];
}

function newHandler(index: () => TopologyLookup | null, metrics = new Registry()): DnsHandler {
  return new DnsHandler({ ttl: 5, negativeTtl: 30, maxUdpSize: 1232, metrics, currentIndex: index, answerCacheBytes: 4 * 1024 * 1024 });
}

const client = (transport: Transport) => ({ address: '127.0.0.1', port: 5000, transport });

describe('fast path answers equal general path answers', () => {
  beforeEach(() => {
    // floor(0.999999 * (i + 1)) === i: the Fisher-Yates shuffle swaps nothing.
    vi.spyOn(Math, 'random').mockReturnValue(0.999999);
  });
  afterEach(() => vi.restoreAllMocks());

  it('byte for byte, for every query form, case, EDNS size, flag and transport, on miss and on hit, as the reference index', async () => {
    const index = buildIndex(instances, 7);
    const metrics = new Registry();
    const handler = newHandler(() => index, metrics);
    const reference = newHandler(() => referenceIndex(instances, 7));
    const variants: Array<[QueryOptions, Transport]> = [
      [{ edns: null }, 'udp'],
      [{ edns: 4096, rd: false, cd: true }, 'udp'],
      [{ edns: 512 }, 'udp'],
      [{ edns: 700, rd: false }, 'udp'],
      [{ edns: null, cd: true }, 'tcp'],
      [{ edns: 1232 }, 'tcp'],
    ];
    let compared = 0;
    for (const round of [1, 2, 3]) {
      // The third round with a forwarder behind: RA set in both paths' answers.
      if (round === 3) handler.next = reference.next = { recursionAvailable: true, handle: () => Promise.resolve(null) };
      for (const [name, type] of PLATFORM_FORMS) {
        for (const asked of cases(name)) {
          for (const [o, transport] of variants) {
            const packet = query(asked, type, { ...o, id: (compared * 7 + round) & 0xffff });
            const fast = handler.answerFast(packet, { address: '127.0.0.1', port: 53000, transport });
            const general = await handler.handle(packet, client(transport));
            const before = await reference.handle(packet, client(transport));
            expect(fast, `${asked} ${type} ${JSON.stringify(o)} ${transport}`).not.toBeNull();
            expect(fast!.equals(general!), `${asked} ${type} ${JSON.stringify(o)} ${transport}`).toBe(true);
            expect(general!.equals(before!), `image vs reference: ${asked} ${type} ${JSON.stringify(o)} ${transport}`).toBe(true);
            compared++;
          }
        }
      }
    }
    expect(compared).toBe(3 * PLATFORM_FORMS.length * 3 * variants.length);
    // The second round (and the other cases of a name) came from the cache.
    expect(await metrics.value('presence_dns_answer_cache_hits_total')).toBeGreaterThan(compared / 2);
  });

  it('covers what the forms promise: TC over 512, the EDNS cap, SOA on negatives, echoed case', () => {
    const handler = newHandler(() => buildIndex(instances, 1));
    const big = handler.answerFast(query('*.big.default.cf.bosh', RRType.A, { edns: null }), UDP_CLIENT)!;
    expect(big.length).toBeLessThanOrEqual(512);
    expect(big[2] & 0x02).toBe(0x02);
    const edns = handler.answerFast(query('*.big.default.cf.bosh', RRType.A, { edns: 4096 }), UDP_CLIENT)!;
    expect(edns[2] & 0x02).toBe(0);
    expect(edns.readUInt16BE(6)).toBe(60);
    const nx = handler.answerFast(query('NoPe.web.default.cf.bosh', RRType.A), UDP_CLIENT)!;
    expect(nx[3] & 0x0f).toBe(3);
    expect(nx.readUInt16BE(8)).toBe(1);
    expect(nx.toString('latin1', 13, 17)).toBe('NoPe');
    const formerr = handler.answerFast(query('a.b.bosh', RRType.A), UDP_CLIENT)!;
    expect(formerr[3] & 0x0f).toBe(1);
  });

  it('leaves to the general path what it does not serve, which answers it as before', async () => {
    const handler = newHandler(() => buildIndex(instances, 1));
    const pointer = query('aaaa-1.web.default.cf.bosh', RRType.A);
    const compressed = Buffer.concat([pointer.subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
    const outside = query('example.com', RRType.A);
    const badVersion = query('aaaa-1.web.default.cf.bosh', RRType.A, { edns: 1232, ednsVersion: 1 });
    const notify = query('aaaa-1.web.default.cf.bosh', RRType.A, { opcode: 4 });
    for (const packet of [compressed, outside, outside, badVersion, notify]) expect(handler.answerFast(packet, UDP_CLIENT)).toBeNull();
    expect((await handler.handle(compressed, client('udp')))![3] & 0x0f).toBe(1);
    expect((await handler.handle(outside, client('udp')))![3] & 0x0f).toBe(5);
    const badvers = (await handler.handle(badVersion, client('udp')))!;
    // BADVERS (16) lives in the OPT record's extended rcode byte: 16 >> 4 = 1.
    expect(badvers[badvers.length - 6]).toBe(1);
    expect((await handler.handle(notify, client('udp')))![3] & 0x0f).toBe(4);
    // With a forwarder behind, names that are not ours reach it — every time, not just the first.
    const forwarded: string[] = [];
    handler.next = { recursionAvailable: true, handle: (q) => (forwarded.push(q.question.name), Promise.resolve(null)) };
    for (let i = 0; i < 2; i++) {
      expect(handler.answerFast(outside, UDP_CLIENT)).toBeNull();
      await handler.handle(outside, client('udp'));
    }
    expect(forwarded).toEqual(['example.com', 'example.com']);
  });

  it('sets RA as the next handler says at the time of each answer', () => {
    const handler = newHandler(() => buildIndex(instances, 1));
    const ask = () => handler.answerFast(query('aaaa-1.web.default.cf.bosh', RRType.A), UDP_CLIENT)![3] & 0x80;
    expect(ask()).toBe(0);
    let upstreams = 1;
    handler.next = { get recursionAvailable() { return upstreams > 0; }, handle: () => Promise.resolve(null) };
    expect(ask()).toBe(0x80);
    upstreams = 0;
    expect(ask()).toBe(0);
  });

  it('serves the new topology from the first query after a swap', () => {
    let index = buildIndex(instances, 1);
    const handler = newHandler(() => index);
    const ask = () => handler.answerFast(query('aaaa-1.web.default.cf.bosh', RRType.A), UDP_CLIENT)!;
    expect([...ask().subarray(-4)]).toEqual([10, 0, 0, 1]);
    index = buildIndex(instances.map((i) => (i.id === 'aaaa-1' ? { ...i, ip: '10.9.9.9' } : i)), 2);
    handler.topologyChanged('replaced', 1);
    expect([...ask().subarray(-4)]).toEqual([10, 9, 9, 9]);
  });

  it('after a delta, re-encodes the names it touches and keeps serving the rest from the cache', async () => {
    const index = buildIndex(instances, 1);
    const metrics = new Registry();
    const handler = newHandler(() => index, metrics);
    const ask = (name: string, type: number = RRType.A) => handler.answerFast(query(name, type), UDP_CLIENT)!;
    const last4 = (reply: Buffer) => [...reply.subarray(-4)].join('.');
    const names = ['aaaa-1.web.default.cf.bosh', 'aaaa-2.web.default.cf.bosh', '0.big.default.cf.bosh', 'big-7.big.default.cf.bosh', 'new-1.web.default.cf.bosh'];
    for (const name of names) ask(name);
    const misses = () => metrics.value('presence_dns_answer_cache_misses_total');
    const before = await misses();
    const old = index.get('aaaa-1.web.default.cf.bosh')!;
    const moved = { ...old, ip: '10.9.9.9' };
    const added = { ...old, id: 'new-1', ip: '10.8.8.8', index: 9, agentId: null };
    const change = index.apply({ seq: 1, version: 2, removes: [], adds: [moved, added] });
    handler.topologyChanged({ tags: tagsOf(change.instances) }, 1);
    expect(last4(ask('aaaa-1.web.default.cf.bosh'))).toBe('10.9.9.9');
    expect(last4(ask('new-1.web.default.cf.bosh'))).toBe('10.8.8.8');
    // The group's wildcard answer changed too; other instances and other groups did not.
    expect(await misses()).toBe(before + 2);
    for (const name of ['aaaa-2.web.default.cf.bosh', '0.big.default.cf.bosh', 'big-7.big.default.cf.bosh']) ask(name);
    expect(await misses()).toBe(before + 2);
    // aaaa-1 (moved), aaaa-2 and new-1; the failing aaaa-3 is left out by the smart filter.
    const group = ask('*.web.default.cf.bosh');
    expect(group.readUInt16BE(6)).toBe(3);
    expect(await misses()).toBe(before + 3);
  });
});

describe('one answer cache for two threads', () => {
  it('serves an answer encoded by one thread to another only when both are at the same state of what it depends on', async () => {
    const buffer = allocateAnswerCache(4 * 1024 * 1024, 2);
    // Two threads' views of the same topology, and their handlers over one cache.
    const ahead = buildIndex(instances, 1);
    const behind = buildIndex(instances, 1);
    const threads = [ahead, behind].map((index, log) => {
      const metrics = new Registry();
      const handler = new DnsHandler({ ttl: 5, negativeTtl: 30, maxUdpSize: 1232, metrics, currentIndex: () => index, answerCache: { buffer, log } });
      handler.topologyChanged('replaced', 1);
      return { handler, encoded: () => metrics.value('presence_dns_answer_cache_misses_total') };
    });
    const [a, b] = threads;
    const address = (handler: DnsHandler) => [...handler.answerFast(query('aaaa-1.web.default.cf.bosh', RRType.A), UDP_CLIENT)!.subarray(-4)].join('.');
    expect(address(a.handler)).toBe('10.0.0.1');
    // The other thread is served what the first encoded.
    expect(address(b.handler)).toBe('10.0.0.1');
    expect(await b.encoded()).toBe(0);
    // The first thread applies change 2, which moves aaaa-1; the other has not yet.
    const old = ahead.get('aaaa-1.web.default.cf.bosh')!;
    const delta = { seq: 1, version: 2, removes: [], adds: [{ ...old, ip: '10.9.9.9' }] };
    a.handler.topologyChanged({ tags: tagsOf(ahead.apply(delta).instances) }, 2);
    expect(address(a.handler)).toBe('10.9.9.9');
    expect(address(b.handler)).toBe('10.0.0.1');
    // The answer the thread behind just encoded is not served to the one ahead.
    expect(address(a.handler)).toBe('10.9.9.9');
    // Now it has caught up: the answer the first thread encoded at change 2 serves it, with no encode of its own.
    b.handler.topologyChanged({ tags: tagsOf(behind.apply(delta).instances) }, 2);
    const encodedBefore = await b.encoded();
    expect(address(b.handler)).toBe('10.9.9.9');
    expect(await b.encoded()).toBe(encodedBefore);
  });
});

describe('metrics on the fast path', () => {
  it('counts every answer it serves by type, rcode and transport, like the general path', async () => {
    const metrics = new Registry();
    const handler = newHandler(() => buildIndex(instances, 1), metrics);
    for (let i = 0; i < 5; i++) handler.answerFast(query('aaaa-1.web.default.cf.bosh', RRType.A), UDP_CLIENT);
    for (let i = 0; i < 3; i++) handler.answerFast(query('nope.web.default.cf.bosh', RRType.AAAA), { address: '127.0.0.1', port: 53000, transport: 'tcp' });
    expect(await metrics.value('coredns_dns_requests_total', { proto: 'udp', type: 'A' })).toBe(5);
    expect(await metrics.value('coredns_dns_requests_total', { proto: 'tcp', type: 'AAAA' })).toBe(3);
    expect(await metrics.value('coredns_dns_responses_total', { rcode: 'NOERROR' })).toBe(5);
    expect(await metrics.value('coredns_dns_responses_total', { rcode: 'NXDOMAIN' })).toBe(3);
    expect(await metrics.value('coredns_dns_request_duration_seconds', { proto: 'udp' })).toBe(5);
    expect(await metrics.value('coredns_dns_request_duration_seconds', { proto: 'tcp' })).toBe(3);
  });
});

describe('shuffling on the fast path', () => {
  afterEach(() => vi.restoreAllMocks());

  it('rotates differently shuffled encodings with the same records', () => {
    let seed = 42;
    vi.spyOn(Math, 'random').mockImplementation(() => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    });
    const handler = newHandler(() => buildIndex(instances, 1));
    const orders = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const reply = handler.answerFast(query('q-s4.web.default.cf.bosh', RRType.A), UDP_CLIENT)!;
      const addresses = [0, 1, 2].map((n) => reply.subarray(reply.length - 4 - 16 * (2 - n), reply.length - 16 * (2 - n)).join('.'));
      expect([...addresses].sort()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
      orders.add(addresses.join(','));
    }
    expect(orders.size).toBeGreaterThan(1);
  });
});

describe('the answer cache is bounded', () => {
  it('stays within its byte budget under a flood of new names, keeps the latest and re-encodes the oldest', () => {
    const index = buildIndex(instances, 1);
    let built = 0;
    const budget = 1024 * 1024;
    const buffer = allocateAnswerCache(budget, 1);
    const cache = new FastPath({
      maxUdpSize: 1232,
      cache: new AnswerCache(buffer, 0),
      build: () => {
        built++;
        return { kind: 'answer', packet: Buffer.alloc(100), shuffled: false, tag: 0 };
      },
      recursionAvailable: () => false,
      served: () => {},
    });
    const ask = (n: number) => cache.answer(query(`random-${n}.web.default.cf.bosh`, RRType.A), 'udp', index);
    // ~170 bytes an entry: 20,000 of them are three times the budget.
    for (let n = 0; n < 20_000; n++) expect(ask(n)).not.toBeNull();
    expect(built).toBe(20_000);
    expect(buffer.byteLength).toBeLessThanOrEqual(budget);
    for (let n = 19_900; n < 20_000; n++) expect(ask(n)).not.toBeNull();
    expect(built).toBe(20_000);
    for (let n = 0; n < 100; n++) expect(ask(n)).not.toBeNull();
    expect(built).toBe(20_100);
  });
});
