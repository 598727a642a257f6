// The fast path must be invisible: for every query form, the bytes it sends (encoded on a
// miss, copied from the answer cache on a hit) are the bytes a handler without the cache
// sends for the same packet (decode → resolver → encoder every time), and the topology
// image answers byte for byte what the first version's index answered (the reference).
// The resolver's shuffle is pinned to "no swap" so every order agrees; rotation of the
// pre-shuffled ring is checked on its own with a seeded sequence.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Registry } from '../../src/admin/metrics.ts';
import { AnswerCache, allocateAnswerCache } from '../../src/dns/answer-cache.ts';
import { FastPath } from '../../src/dns/fastpath.ts';
import { DnsHandler, type Reply, type Transport } from '../../src/dns/handler.ts';
import { PlatformResolver } from '../../src/dns/resolver.ts';
import { RRType } from '../../src/codec/index.ts';
import { tagsOf } from '../../src/image/cache-tags.ts';
import { parseTopology } from '../../src/control/reader.ts';
import type { TopologyLookup, TopologyView } from '../../src/image/view.ts';
import { required } from '../helpers/required.ts';
import { topologyJson, type TestInstance } from '../helpers/topology.ts';
import { ReferenceIndex } from '../image/reference-index.ts';
import { viewOf } from '../image/views.ts';
import { buildQuery } from './client.ts';

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

const v6Reverse = `1${'.0'.repeat(27)}.0.0.d.f.ip6.arpa`;
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

/** A handler with an answer cache of 4 MiB, or none (`answerCacheBytes` 0: every answer encoded anew). */
function newHandler(index: () => TopologyLookup | null, metrics = new Registry(), answerCacheBytes = 4 * 1024 * 1024): DnsHandler {
  return new DnsHandler({ ttl: 5, negativeTtl: 30, maxUdpSize: 1232, metrics, currentIndex: index, answerCacheBytes });
}

const client = (transport: Transport) => ({ address: '127.0.0.1', port: 5000, transport });

/** A reply given at once: every platform answer is, with or without the cache. */
function atOnce(reply: Reply): Buffer {
  if (!Buffer.isBuffer(reply)) throw new Error(`expected a reply at once, got ${reply === null ? 'none' : 'a promise'}`);
  return reply;
}

/** The reply to `packet` from the handler, given at once: what a client of the fast path receives. */
const ask = (handler: DnsHandler, packet: Buffer, transport: Transport = 'udp') => atOnce(handler.answer(packet, client(transport)));

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
    const uncached = newHandler(() => index, new Registry(), 0);
    const reference = newHandler(() => referenceIndex(instances, 7), new Registry(), 0);
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
      if (round === 3) handler.next = uncached.next = reference.next = { recursionAvailable: true, handle: () => Promise.resolve(null) };
      for (const [name, type] of PLATFORM_FORMS) {
        for (const asked of cases(name)) {
          for (const [o, transport] of variants) {
            const packet = query(asked, type, { ...o, id: (compared * 7 + round) & 0xffff });
            const fast = ask(handler, packet, transport);
            const general = ask(uncached, packet, transport);
            const before = ask(reference, packet, transport);
            expect(fast.equals(general), `${asked} ${type} ${JSON.stringify(o)} ${transport}`).toBe(true);
            expect(general.equals(before), `image vs reference: ${asked} ${type} ${JSON.stringify(o)} ${transport}`).toBe(true);
            compared++;
          }
        }
      }
    }
    expect(compared).toBe(3 * PLATFORM_FORMS.length * 3 * variants.length);
    // The second round (and the other cases of a name) came from the cache; each key was encoded once.
    expect(await metrics.value('presence_dns_answer_cache_hits_total')).toBeGreaterThan(compared / 2);
    expect(await metrics.value('presence_dns_answer_cache_misses_total')).toBe(PLATFORM_FORMS.length * variants.length);
  });

  it('covers what the forms promise: TC over 512, the EDNS cap, SOA on negatives, echoed case', () => {
    const handler = newHandler(() => buildIndex(instances, 1));
    const big = ask(handler, query('*.big.default.cf.bosh', RRType.A, { edns: null }));
    expect(big.length).toBeLessThanOrEqual(512);
    expect(big[2] & 0x02).toBe(0x02);
    const edns = ask(handler, query('*.big.default.cf.bosh', RRType.A, { edns: 4096 }));
    expect(edns[2] & 0x02).toBe(0);
    expect(edns.readUInt16BE(6)).toBe(60);
    const nx = ask(handler, query('NoPe.web.default.cf.bosh', RRType.A));
    expect(nx[3] & 0x0f).toBe(3);
    expect(nx.readUInt16BE(8)).toBe(1);
    expect(nx.toString('latin1', 13, 17)).toBe('NoPe');
    const formerr = ask(handler, query('a.b.bosh', RRType.A));
    expect(formerr[3] & 0x0f).toBe(1);
  });

  it('keeps nothing for packets it has no key for, answers them as before, and passes names not ours on every time, resolving them once', async () => {
    const metrics = new Registry();
    const handler = newHandler(() => buildIndex(instances, 1), metrics);
    const pointer = query('aaaa-1.web.default.cf.bosh', RRType.A);
    const compressed = Buffer.concat([pointer.subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
    const outside = query('example.com', RRType.A);
    const badVersion = query('aaaa-1.web.default.cf.bosh', RRType.A, { edns: 1232, ednsVersion: 1 });
    const notify = query('aaaa-1.web.default.cf.bosh', RRType.A, { opcode: 4 });
    const looked = async () => [await metrics.value('presence_dns_answer_cache_hits_total'), await metrics.value('presence_dns_answer_cache_misses_total')];
    const rcode = async (packet: Buffer) => required(await handler.answer(packet, client('udp')), 'a reply')[3] & 0x0f;
    expect(await rcode(compressed)).toBe(1);
    const badvers = required(await handler.answer(badVersion, client('udp')), 'a BADVERS reply');
    // BADVERS (16) lives in the OPT record's extended rcode byte: 16 >> 4 = 1.
    expect(badvers[badvers.length - 6]).toBe(1);
    expect(await rcode(notify)).toBe(4);
    expect(await looked()).toEqual([0, 0]);
    // A name not ours is kept as such: asked again, the cache says so and no resolver is asked.
    expect(await rcode(outside)).toBe(5);
    expect(await rcode(outside)).toBe(5);
    expect(await looked()).toEqual([1, 1]);
    // With a forwarder behind, names that are not ours reach it — every time, not just the first.
    const resolve = vi.spyOn(PlatformResolver.prototype, 'resolve');
    const forwarded: string[] = [];
    handler.next = { recursionAvailable: true, handle: (q) => (forwarded.push(q.question.name), Promise.resolve(null)) };
    const other = query('other.example.com', RRType.A);
    for (let i = 0; i < 3; i++) expect(await rcode(other)).toBe(5);
    expect(forwarded).toEqual(['other.example.com', 'other.example.com', 'other.example.com']);
    expect(resolve).toHaveBeenCalledTimes(1);
  });

  it('sets RA as the next handler says at the time of each answer', () => {
    const handler = newHandler(() => buildIndex(instances, 1));
    const ra = () => ask(handler, query('aaaa-1.web.default.cf.bosh', RRType.A))[3] & 0x80;
    expect(ra()).toBe(0);
    let upstreams = 1;
    handler.next = {
      get recursionAvailable() {
        return upstreams > 0;
      },
      handle: () => Promise.resolve(null),
    };
    expect(ra()).toBe(0x80);
    upstreams = 0;
    expect(ra()).toBe(0);
  });

  it('serves the new topology from the first query after a swap', () => {
    let index = buildIndex(instances, 1);
    const handler = newHandler(() => index);
    const address = () => [...ask(handler, query('aaaa-1.web.default.cf.bosh', RRType.A)).subarray(-4)];
    expect(address()).toEqual([10, 0, 0, 1]);
    index = buildIndex(instances.map((i) => (i.id === 'aaaa-1' ? { ...i, ip: '10.9.9.9' } : i)), 2);
    handler.topologyChanged('replaced', 1);
    expect(address()).toEqual([10, 9, 9, 9]);
  });

  it('after a delta, re-encodes the names it touches and keeps serving the rest from the cache', async () => {
    const index = buildIndex(instances, 1);
    const metrics = new Registry();
    const handler = newHandler(() => index, metrics);
    const reply = (name: string, type: number = RRType.A) => ask(handler, query(name, type));
    const last4 = (reply: Buffer) => [...reply.subarray(-4)].join('.');
    const names = ['aaaa-1.web.default.cf.bosh', 'aaaa-2.web.default.cf.bosh', '0.big.default.cf.bosh', 'big-7.big.default.cf.bosh', 'new-1.web.default.cf.bosh'];
    for (const name of names) reply(name);
    const misses = () => metrics.value('presence_dns_answer_cache_misses_total');
    const before = await misses();
    const old = required(index.get('aaaa-1.web.default.cf.bosh'), 'aaaa-1 in the topology');
    const moved = { ...old, ip: '10.9.9.9' };
    const added = { ...old, id: 'new-1', ip: '10.8.8.8', index: 9, agentId: null };
    const change = index.apply({ seq: 1, version: 2, removes: [], adds: [moved, added] });
    handler.topologyChanged({ tags: tagsOf(change.instances) }, 1);
    expect(last4(reply('aaaa-1.web.default.cf.bosh'))).toBe('10.9.9.9');
    expect(last4(reply('new-1.web.default.cf.bosh'))).toBe('10.8.8.8');
    // The group's wildcard answer changed too; other instances and other groups did not.
    expect(await misses()).toBe(before + 2);
    for (const name of ['aaaa-2.web.default.cf.bosh', '0.big.default.cf.bosh', 'big-7.big.default.cf.bosh']) reply(name);
    expect(await misses()).toBe(before + 2);
    // aaaa-1 (moved), aaaa-2 and new-1; the failing aaaa-3 is left out by the smart filter.
    const group = reply('*.web.default.cf.bosh');
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
    const address = (handler: DnsHandler) => [...ask(handler, query('aaaa-1.web.default.cf.bosh', RRType.A)).subarray(-4)].join('.');
    expect(address(a.handler)).toBe('10.0.0.1');
    // The other thread is served what the first encoded.
    expect(address(b.handler)).toBe('10.0.0.1');
    expect(await b.encoded()).toBe(0);
    // The first thread applies change 2, which moves aaaa-1; the other has not yet.
    const old = required(ahead.get('aaaa-1.web.default.cf.bosh'), 'aaaa-1 in the topology');
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
  it('counts every answer it serves by type, rcode and transport, as a handler without the cache does', async () => {
    for (const answerCacheBytes of [4 * 1024 * 1024, 0]) {
      const metrics = new Registry();
      const handler = newHandler(() => buildIndex(instances, 1), metrics, answerCacheBytes);
      for (let i = 0; i < 5; i++) ask(handler, query('aaaa-1.web.default.cf.bosh', RRType.A));
      for (let i = 0; i < 3; i++) ask(handler, query('nope.web.default.cf.bosh', RRType.AAAA), 'tcp');
      expect(await metrics.value('coredns_dns_requests_total', { proto: 'udp', type: 'A' })).toBe(5);
      expect(await metrics.value('coredns_dns_requests_total', { proto: 'tcp', type: 'AAAA' })).toBe(3);
      expect(await metrics.value('coredns_dns_responses_total', { rcode: 'NOERROR' })).toBe(5);
      expect(await metrics.value('coredns_dns_responses_total', { rcode: 'NXDOMAIN' })).toBe(3);
      expect(await metrics.value('coredns_dns_request_duration_seconds', { proto: 'udp' })).toBe(5);
      expect(await metrics.value('coredns_dns_request_duration_seconds', { proto: 'tcp' })).toBe(3);
    }
  });
});

describe('shuffling on the fast path', () => {
  afterEach(() => vi.restoreAllMocks());

  it('rotates differently shuffled encodings with the same records, all drawn from one lookup', () => {
    let seed = 42;
    vi.spyOn(Math, 'random').mockImplementation(() => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    });
    const resolve = vi.spyOn(PlatformResolver.prototype, 'resolve');
    const handler = newHandler(() => buildIndex(instances, 1));
    const orders = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const reply = ask(handler, query('q-s4.web.default.cf.bosh', RRType.A));
      const addresses = [0, 1, 2].map((n) => reply.subarray(reply.length - 4 - 16 * (2 - n), reply.length - 16 * (2 - n)).join('.'));
      expect([...addresses].sort()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
      orders.add(addresses.join(','));
    }
    expect(orders.size).toBeGreaterThan(1);
    expect(resolve).toHaveBeenCalledTimes(1);
  });
});

describe('the answer cache is bounded', () => {
  it('stays within its byte budget under a flood of new names, keeps the latest and re-encodes the oldest', () => {
    const index = buildIndex(instances, 1);
    const budget = 1024 * 1024;
    const buffer = allocateAnswerCache(budget, 1);
    const fast = new FastPath({
      maxUdpSize: 1232,
      cache: new AnswerCache(buffer, 0),
      resolver: new PlatformResolver({ ttl: 5, negativeTtl: 30 }),
      recursionAvailable: () => false,
    });
    const nxdomain = (n: number) => required(fast.answer(query(`random-${n}.web.default.cf.bosh`, RRType.A), 'udp', index), 'a fast-path answer')[3] & 0x0f;
    // ~160 bytes an entry (an NXDOMAIN with its SOA, and the key): 20,000 of them are three times the budget.
    for (let n = 0; n < 20_000; n++) expect(nxdomain(n)).toBe(3);
    expect(fast.misses).toBe(20_000);
    expect(buffer.byteLength).toBeLessThanOrEqual(budget);
    for (let n = 19_900; n < 20_000; n++) expect(nxdomain(n)).toBe(3);
    expect(fast.misses).toBe(20_000);
    for (let n = 0; n < 100; n++) expect(nxdomain(n)).toBe(3);
    expect(fast.misses).toBe(20_100);
  });
});
