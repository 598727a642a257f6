// Upstream replies as opaque messages: what is accepted, what may be cached for how long,
// and how a stored reply is replayed to a client (ID, case, TTLs, TC, our OPT).
import { describe, expect, it } from 'vitest';
import { decodeQuery, encodeResponse, Rcode, RRType, type DnsResult, type ResourceRecord } from '../../src/codec/index.ts';
import { buildUpstreamQuery, parseUpstreamResponse, renderReply, type StoredMessage } from '../../src/forward/message.ts';
import { makeQuery, readReply } from './packets.ts';

const SOA: ResourceRecord = {
  name: 'example.com', ttl: 300, type: RRType.SOA, mname: 'ns.example.com', rname: 'h.example.com',
  serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 120,
};

function a(name: string, address: string, ttl: number): ResourceRecord {
  return { name, ttl, type: RRType.A, address };
}

/** What an upstream would send for the query we build from the client's `name`. */
function upstreamReply(name: string, result: Partial<DnsResult>, tweak?: (reply: Buffer) => unknown) {
  const client = makeQuery(name);
  const sent = buildUpstreamQuery(0xbeef, client.packet, client.query);
  const decoded = decodeQuery(sent);
  if (!decoded.ok) throw new Error(decoded.reason);
  const reply = encodeResponse(sent, decoded.query, { rcode: 0, authoritative: true, answers: [], authority: [], additional: [], ...result }, {
    transport: 'tcp', maxUdpSize: 4096, recursionAvailable: true,
  });
  const tweaked = tweak?.(reply);
  const sentReply = Buffer.isBuffer(tweaked) ? tweaked : reply;
  return { client, sent, reply: sentReply, parsed: parseUpstreamResponse(sentReply, sent) };
}

function stored(name: string, result: Partial<DnsResult>): StoredMessage {
  const { parsed } = upstreamReply(name, result);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.stored;
}

describe('upstream replies', () => {
  it('sends the question lower-cased with RD and EDNS', () => {
    const { packet, query } = makeQuery('WWW.Example.COM');
    const sent = decodeQuery(buildUpstreamQuery(42, packet, query));
    expect(sent).toMatchObject({ ok: true, query: { id: 42, recursionDesired: true, question: { name: 'www.example.com', type: RRType.A }, edns: { udpSize: 1232 } } });
  });

  it('rejects replies that do not belong to the query', () => {
    expect(upstreamReply('www.example.com', {}, (r) => r.writeUInt16BE(1, 0)).parsed).toMatchObject({ ok: false, reason: expect.stringContaining('ID') });
    expect(upstreamReply('www.example.com', {}, (r) => (r[13] = 'x'.charCodeAt(0))).parsed).toMatchObject({ ok: false, reason: expect.stringContaining('question') });
    expect(upstreamReply('www.example.com', {}, (r) => r.writeUInt16BE(r.readUInt16BE(2) & 0x7fff, 2)).parsed).toMatchObject({ ok: false });
    expect(upstreamReply('www.example.com', {}, (r) => r.writeUInt16BE(9, 6)).parsed).toMatchObject({ ok: false });
    const answers = [a('www.example.com', '192.0.2.1', 60)];
    expect(upstreamReply('www.example.com', { answers }, (r) => r.subarray(0, r.length - 14)).parsed).toMatchObject({ ok: false, reason: expect.stringContaining('past') });
  });

  it('may be cached for the smallest record TTL; negative answers for the SOA minimum; failures not at all', () => {
    expect(stored('www.example.com', { answers: [a('www.example.com', '192.0.2.1', 300), a('www.example.com', '192.0.2.2', 60)] }).cacheTtl).toBe(60);
    expect(stored('nope.example.com', { rcode: Rcode.NXDOMAIN, authority: [SOA] }).cacheTtl).toBe(120);
    expect(stored('nope.example.com', { rcode: Rcode.NXDOMAIN, authority: [{ ...SOA, ttl: 30 }] }).cacheTtl).toBe(30);
    expect(stored('nodata.example.com', { authority: [SOA] }).cacheTtl).toBe(120);
    expect(stored('nodata.example.com', {}).cacheTtl).toBeNull();
    expect(stored('www.example.com', { rcode: Rcode.SERVFAIL }).cacheTtl).toBeNull();
  });
});

describe('a stored reply', () => {
  it('owns its bytes: a cached message keeps no shared buffer pool slab alive', () => {
    const message = stored('www.example.com', { answers: [a('www.example.com', '192.0.2.1', 60)] }).message;
    expect(message.byteOffset).toBe(0);
    expect(message.buffer.byteLength).toBe(message.length);
  });
});

describe('replaying a stored reply', () => {
  const big = Array.from({ length: 40 }, (_, i) => a('big.example.com', `198.51.100.${i}`, 60));

  it('answers with the client ID, the client case, rewritten TTLs and our OPT with the given options', () => {
    const message = stored('www.example.com', { answers: [a('www.example.com', '192.0.2.1', 300)], authority: [SOA] });
    const { packet, query } = makeQuery('WwW.eXample.com', { id: 4242 });
    const reply = readReply(renderReply(message, {
      query, packet, ttl: (t) => t - 100, transport: 'udp', maxUdpSize: 1232,
      ednsOptions: [{ code: 15, data: Buffer.from([0, 3]) }],
    }));
    expect(reply).toMatchObject({ id: 4242, rcode: 0, truncated: false, recursionAvailable: true, question: 'WwW.eXample.com', addresses: ['192.0.2.1'], ede: [3] });
    expect([...reply.answers, ...reply.authority].map((r) => r.ttl)).toEqual([200, 200]);
  });

  it('keeps whole records up to the client size and sets TC when any is left out', () => {
    const message = stored('big.example.com', { answers: big });
    const plain = makeQuery('big.example.com', { udpSize: null });
    const small = readReply(renderReply(message, { ...plain, ttl: (t) => t, transport: 'udp', maxUdpSize: 1232 }));
    expect(small.truncated).toBe(true);
    expect(small.addresses.length).toBe(Math.floor((512 - 33) / 16));
    const full = readReply(renderReply(message, { ...plain, ttl: (t) => t, transport: 'tcp', maxUdpSize: 1232 }));
    expect(full.truncated).toBe(false);
    expect(full.addresses).toHaveLength(40);
  });

  it('drops the upstream OPT so only ours goes to the client', () => {
    const { parsed } = upstreamReply('www.example.com', { answers: [a('www.example.com', '192.0.2.1', 60)] });
    expect(parsed.ok && parsed.stored.recordEnds.length).toBe(1);
    const message = stored('www.example.com', { answers: [a('www.example.com', '192.0.2.1', 60)] });
    const plain = makeQuery('www.example.com', { udpSize: null });
    const reply = readReply(renderReply(message, { ...plain, ttl: (t) => t, transport: 'udp', maxUdpSize: 1232 }));
    expect(reply.additional).toEqual([]);
    expect(reply.ede).toEqual([]);
  });
});
