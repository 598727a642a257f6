// Decoding queries, good and hostile: the question in the client's case, EDNS, and a
// FORMERR (with the ID) or a silent drop for everything malformed; and the size of the
// reply a client can take.
import { describe, expect, it } from 'vitest';
import { decodeQuery, type DecodedQuery } from '../../src/codec/query.ts';
import { replyLimit, RRType } from '../../src/codec/protocol.ts';
import { buildQuery } from '../dns/client.ts';

const query = buildQuery;

function decoded(packet: Buffer): DecodedQuery {
  const d = decodeQuery(packet);
  if (!d.ok) throw new Error(`did not decode: ${d.reason}`);
  return d.query;
}

describe('decoding queries', () => {
  it('reads id, flags, question and keeps the name\'s case', () => {
    const q = decoded(query('Web.Default.CF.bosh', { id: 0xbeef, flags: 0x0110, type: RRType.SRV }));
    expect(q).toMatchObject({
      id: 0xbeef, opcode: 0, recursionDesired: true, checkingDisabled: true,
      question: { name: 'Web.Default.CF.bosh', type: RRType.SRV, class: 1 }, edns: null,
    });
  });

  it('reads the EDNS OPT record: size, version, DO bit', () => {
    const q = decoded(query('a.bosh', { edns: { udpSize: 4096, version: 1, dnssecOk: true } }));
    expect(q.edns).toEqual({ udpSize: 4096, version: 1, dnssecOk: true });
  });

  it('reads the root name', () => {
    expect(decoded(query('')).question.name).toBe('');
  });

  it.each([
    ['shorter than a header', Buffer.alloc(11), 'shorter than a DNS header'],
    ['a response', query('a.bosh', { flags: 0x8000 }), 'a response, not a query'],
  ])('drops %s without an id to answer', (_what, packet, reason) => {
    expect(decodeQuery(packet)).toEqual({ ok: false, id: null, reason });
  });

  const good = query('a.bosh');
  const pointerInQuestion = Buffer.concat([good.subarray(0, 12), Buffer.from([0xc0, 0x0c]), good.subarray(-4)]);
  const loop = Buffer.concat([query('a.bosh', { edns: { udpSize: 512 } }).subarray(0, 24), Buffer.from([0xc0, 24, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0])]);
  const twoOpts = (() => {
    const p = query('a.bosh', { edns: { udpSize: 512 } });
    const out = Buffer.concat([p, p.subarray(-11)]);
    out.writeUInt16BE(2, 10);
    return out;
  })();
  const additionalWithoutRecords = Buffer.from(good);
  additionalWithoutRecords.writeUInt16BE(3, 10);
  const long = Buffer.concat([good.subarray(0, 12), ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)])), Buffer.from([0, 0, 1, 0, 1])]);

  it.each([
    ['no question', query('a.bosh', { qdcount: 0 }), 'expected one question, got 0'],
    ['two questions', query('a.bosh', { qdcount: 2 }), 'expected one question, got 2'],
    ['a name running past the end', good.subarray(0, 15), 'label runs past the packet'],
    ['a question without type and class', good.subarray(0, good.length - 2), 'question runs past the packet'],
    ['a compression pointer in the question', pointerInQuestion, 'compression pointer in question'],
    ['a pointer loop in the additional section', loop, 'pointer loop'],
    ['a reserved label type', Buffer.concat([good.subarray(0, 12), Buffer.from([0x40, 0]), good.subarray(-4)]), 'unknown label type'],
    ['a name over 255 bytes', long, 'name longer than 255 bytes'],
    ['a name of 256 bytes (254 characters)', Buffer.concat([good.subarray(0, 12), ...[63, 63, 63, 62].map((n) => Buffer.concat([Buffer.from([n]), Buffer.alloc(n, 0x61)])), Buffer.from([0, 0, 1, 0, 1])]), 'name longer than 255 bytes'],
    ['a dot inside a label', Buffer.concat([good.subarray(0, 12), Buffer.from([3, 0x61, 0x2e, 0x62, 0]), good.subarray(-4)]), 'label contains a dot'],
    ['an additional count with no records', additionalWithoutRecords, 'name runs past the packet'],
    ['two OPT records', twoOpts, 'more than one OPT record'],
  ])('answers FORMERR with the id for %s', (_what, packet, reason) => {
    expect(decodeQuery(packet)).toEqual({ ok: false, id: 0x1234, opcode: 0, recursionDesired: true, reason });
  });

  it('sizes UDP answers to 512 without EDNS, else the client\'s size within ours; TCP to 65535', () => {
    const limit = (packet: Buffer, transport: 'udp' | 'tcp' = 'udp') => replyLimit(transport, decoded(packet).edns?.udpSize ?? null, 1232);
    expect(limit(query('a.bosh'))).toBe(512);
    expect(limit(query('a.bosh', { edns: { udpSize: 4096 } }))).toBe(1232);
    expect(limit(query('a.bosh', { edns: { udpSize: 1000 } }))).toBe(1000);
    expect(limit(query('a.bosh', { edns: { udpSize: 100 } }))).toBe(512);
    expect(limit(query('a.bosh'), 'tcp')).toBe(65535);
  });
});
