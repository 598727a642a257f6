// The fast path's key: the same for every query whose answer is the same bytes apart
// from ID, RD/CD and case; different whenever the answer may differ; and never made of a
// packet the query decoder reads otherwise — checked against the decoder on well-formed
// queries and on thousands of mutated ones.
import { describe, expect, it } from 'vitest';
import { fastKey, FAST_KEY_BYTES, type FastQuestion } from '../../src/codec/fast-key.ts';
import { replyLimit, RRType, type Transport } from '../../src/codec/protocol.ts';
import { decodeQuery } from '../../src/codec/query.ts';
import { buildQuery, encodeName, type QueryOptions } from '../dns/client.ts';

function key(packet: Buffer, transport: Transport = 'udp'): string | null {
  const scratch = Buffer.alloc(FAST_KEY_BYTES);
  const length = fastKey(packet, transport, 1232, scratch, { nameEnd: 0, type: 0 });
  return length === 0 ? null : scratch.toString('hex', 0, length);
}

const q = (name: string, o: QueryOptions = {}) => buildQuery(name, o);

describe('the fast-path key', () => {
  it('is the same whatever the ID, RD, CD and case', () => {
    const base = key(q('web.default.cf.bosh'));
    expect(base).not.toBeNull();
    expect(key(q('WEB.Default.cf.BOSH', { id: 7, flags: 0x0010 }))).toBe(base);
  });

  it('differs by type, class, EDNS or not, the size limit and the transport', () => {
    const keys = [
      key(q('web.bosh')),
      key(q('web.bosh', { type: RRType.AAAA })),
      key(q('web.bosh', { klass: 255 })),
      key(q('web.bosh', { edns: { udpSize: 512 } })),
      key(q('web.bosh', { edns: { udpSize: 1000 } })),
      key(q('web.bosh'), 'tcp'),
    ];
    expect(new Set(keys).size).toBe(keys.length);
    // Sizes past ours are one limit: ours.
    expect(key(q('web.bosh', { edns: { udpSize: 4096 } }))).toBe(key(q('web.bosh', { edns: { udpSize: 1232 } })));
  });

  it('is none for what the decoder must decide', () => {
    const good = q('a.bosh');
    const pointer = Buffer.concat([good.subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
    for (const packet of [
      q('a.bosh', { flags: 0x8000 }), q('a.bosh', { flags: 0x2000 }), q('a.bosh', { qdcount: 2 }), pointer,
      q('a.bosh', { edns: { udpSize: 1232, version: 1 } }), Buffer.concat([good.subarray(0, 12), Buffer.from([3, 0x61, 0x2e, 0x62, 0, 0, 1, 0, 1])]),
      q('b\u00e9.bosh'), good.subarray(0, good.length - 1),
    ]) expect(key(packet)).toBeNull();
  });

  it('takes the longest name the decoder takes (255 bytes) and no longer', () => {
    const header = q('a').subarray(0, 12);
    const question = (lengths: number[]) => Buffer.concat([header, ...lengths.map((n) => encodeName('a'.repeat(n)).subarray(0, n + 1)), Buffer.from([0, 0, 1, 0, 1])]);
    const longest = question([63, 63, 63, 61]);
    expect(decodeQuery(longest).ok).toBe(true);
    expect(key(longest)).not.toBeNull();
    const over = question([63, 63, 63, 62]);
    expect(decodeQuery(over).ok).toBe(false);
    expect(key(over)).toBeNull();
  });

  it('is made only of packets the decoder reads the same way, over thousands of mutations', () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const bases = [
      q('web.default.cf.bosh'), q('_http._tcp.Web.bosh', { type: RRType.SRV, edns: { udpSize: 4096 } }),
      q('', { edns: { udpSize: 100, dnssecOk: true } }), q('1.0.0.10.in-addr.arpa', { type: RRType.PTR }),
    ];
    let keyed = 0;
    for (let i = 0; i < 20_000; i++) {
      const packet = Buffer.from(bases[random(bases.length)]);
      for (let m = random(3); m >= 0; m--) packet[random(packet.length)] = random(4) === 0 ? random(256) : packet[random(packet.length)];
      const mutated = random(5) === 0 ? packet.subarray(0, random(packet.length + 1)) : packet;
      const transport: Transport = random(2) === 0 ? 'udp' : 'tcp';
      const scratch = Buffer.alloc(FAST_KEY_BYTES);
      const out: FastQuestion = { nameEnd: 0, type: 0 };
      const length = fastKey(mutated, transport, 1232, scratch, out);
      if (length === 0) continue;
      keyed++;
      const decoded = decodeQuery(mutated);
      expect(decoded.ok).toBe(true);
      if (!decoded.ok) continue;
      const { query } = decoded;
      expect(query.opcode).toBe(0);
      expect(query.edns?.version ?? 0).toBe(0);
      expect(out).toEqual({ nameEnd: query.questionEnd - 4, type: query.question.type });
      const name = encodeName(query.question.name.toLowerCase());
      expect(scratch.subarray(0, name.length).equals(name)).toBe(true);
      expect(scratch.readUInt16BE(name.length + 2)).toBe(query.question.class);
      expect(scratch.readUInt16BE(name.length + 5)).toBe(replyLimit(transport, query.edns?.udpSize ?? null, 1232));
    }
    expect(keyed).toBeGreaterThan(1000);
  });
});
