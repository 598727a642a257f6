// Encoding responses, checked with an independent decoder (dns2's): compression, TC when
// records do not fit, the client's case echoed, EDNS and extended rcodes, bare replies,
// and values the wire format cannot carry refused.
import { Packet } from 'dns2';
import { describe, expect, it } from 'vitest';
import { decodeQuery } from '../../src/codec/query.ts';
import { Rcode, RRType, type Transport } from '../../src/codec/protocol.ts';
import { encodeBareReply, encodeResponse, type DnsResult, type ResourceRecord } from '../../src/codec/response.ts';
import { UnencodableError } from '../../src/codec/writer.ts';
import { nameProblem } from '../../src/util/dns-name.ts';
import { buildQuery as query } from '../dns/client.ts';

function decoded(packet: Buffer) {
  const d = decodeQuery(packet);
  if (!d.ok) throw new Error(`did not decode: ${d.reason}`);
  return d.query;
}

const a = (name: string, address: string): ResourceRecord => ({ name, ttl: 5, type: RRType.A, address });

function result(answers: ResourceRecord[], over: Partial<DnsResult> = {}): DnsResult {
  return { rcode: Rcode.NOERROR, authoritative: true, answers, authority: [], additional: [], ...over };
}

function respond(packet: Buffer, r: DnsResult, transport: Transport = 'udp'): { bytes: Buffer; parsed: Packet } {
  const bytes = encodeResponse(packet, decoded(packet), r, { transport, maxUdpSize: 1232, recursionAvailable: false });
  return { bytes, parsed: Packet.parse(bytes) };
}

describe('encoding responses', () => {
  it('echoes id, flags, the question in the asker\'s case, and the records', () => {
    const packet = query('Q-S0.Web.default.CF.bosh', { id: 77 });
    const { parsed } = respond(packet, result([a('Q-S0.Web.default.CF.bosh', '10.0.0.1')]));
    expect(parsed.header).toMatchObject({ id: 77, qr: 1, aa: 1, tc: 0, rd: 1, ra: 0, rcode: 0 });
    expect(parsed.questions[0].name).toBe('Q-S0.Web.default.CF.bosh');
    expect(parsed.answers).toMatchObject([{ name: 'Q-S0.Web.default.CF.bosh', type: RRType.A, ttl: 5, address: '10.0.0.1' }]);
  });

  it('compresses a repeated name into a pointer to the question', () => {
    const packet = query('web.default.cf.bosh');
    const { bytes, parsed } = respond(packet, result([a('web.default.cf.bosh', '10.0.0.1'), a('web.default.cf.bosh', '10.0.0.2')]));
    const answerStart = packet.length;
    expect(bytes.readUInt16BE(answerStart)).toBe(0xc000 | 12);
    expect(bytes.length).toBe(packet.length + 2 * (2 + 10 + 4));
    expect(parsed.answers.map((r) => r.address)).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('writes AAAA, SRV, PTR and SOA records a standard decoder reads back', () => {
    const packet = query('_http._tcp.web.default.cf.bosh', { type: RRType.SRV });
    const { parsed } = respond(packet, result(
      [{ name: '_http._tcp.web.default.cf.bosh', ttl: 5, type: RRType.SRV, priority: 0, weight: 1, port: 8080, target: 'id-1.web.default.cf.bosh' }],
      {
        authority: [{ name: 'bosh', ttl: 5, type: RRType.SOA, mname: 'ns.bosh', rname: 'hostmaster.bosh', serial: 7, refresh: 3600, retry: 600, expire: 86400, minimum: 5 }],
        additional: [
          { name: 'id-1.web.default.cf.bosh', ttl: 5, type: RRType.AAAA, address: 'fd00:0000:0000:0000:0000:0000:0001:0010' },
          { name: '10.0.0.10.in-addr.arpa', ttl: 5, type: RRType.PTR, target: 'id-1.web.default.cf.bosh' },
        ],
      },
    ));
    expect(parsed.errors).toEqual([]);
    expect(parsed.answers[0]).toMatchObject({ priority: 0, weight: 1, port: 8080, target: 'id-1.web.default.cf.bosh' });
    expect(parsed.authorities[0]).toMatchObject({ name: 'bosh', primary: 'ns.bosh', admin: 'hostmaster.bosh', serial: 7, minimum: 5 });
    expect(parsed.additionals[0]).toMatchObject({ type: RRType.AAAA, address: 'fd00::1:10' });
    expect(parsed.additionals[1]).toMatchObject({ type: RRType.PTR, domain: 'id-1.web.default.cf.bosh' });
  });

  it('sets TC and stops at the first record that does not fit, never exceeding the limit', () => {
    const name = 'q-s4.a-rather-long-group-name.default.cf.bosh';
    const ips = Array.from({ length: 100 }, (_, n) => `10.0.${n >> 8}.${n & 255}`);
    const answers = ips.map((ip) => a(name, ip));
    const { bytes, parsed } = respond(query(name), result(answers));
    expect(bytes.length).toBeLessThanOrEqual(512);
    expect(parsed.header.tc).toBe(1);
    expect(parsed.answers.length).toBe(Math.floor((512 - query(name).length) / 16));
    expect(parsed.answers.map((r) => r.address)).toEqual(ips.slice(0, parsed.answers.length));
  });

  it('fits everything without TC when the limit allows (TCP)', () => {
    const answers = Array.from({ length: 100 }, (_, n) => a('big.bosh', `10.0.0.${n}`));
    const { parsed } = respond(query('big.bosh'), result(answers), 'tcp');
    expect(parsed.header.tc).toBe(0);
    expect(parsed.answers).toHaveLength(100);
  });

  it('answers EDNS with an OPT of our size, reserving room for it', () => {
    const packet = query('big.bosh', { edns: { udpSize: 600 } });
    const answers = Array.from({ length: 100 }, (_, n) => a('big.bosh', `10.0.0.${n}`));
    const bytes = encodeResponse(packet, decoded(packet), result(answers), { transport: 'udp', maxUdpSize: 1232, recursionAvailable: true });
    const parsed = Packet.parse(bytes);
    expect(bytes.length).toBeLessThanOrEqual(600);
    expect(parsed.header).toMatchObject({ tc: 1, ra: 1 });
    const opt = parsed.additionals.find((r) => r.type === RRType.OPT);
    expect(opt?.class).toBe(1232);
  });

  it('puts an extended rcode (BADVERS) into the OPT record', () => {
    const packet = query('a.bosh', { edns: { udpSize: 1232, version: 1 } });
    const bytes = encodeResponse(packet, decoded(packet), result([], { rcode: Rcode.BADVERS, authoritative: false }), { transport: 'udp', maxUdpSize: 1232, recursionAvailable: false });
    expect(bytes[3] & 0x0f).toBe(0);
    const optTtl = bytes.readUInt32BE(bytes.length - 6);
    expect(optTtl >>> 24).toBe(1);
  });

  it('builds a bare FORMERR with the query\'s id', () => {
    const bytes = encodeBareReply(0x4242, 0, true, Rcode.FORMERR);
    expect(Packet.parse(bytes).header).toMatchObject({ id: 0x4242, qr: 1, rd: 1, rcode: Rcode.FORMERR, qdcount: 0 });
  });

  // Three labels of 63 and one of 62: 254 characters of text, 256 bytes on the wire.
  const overlong = `${Array.from({ length: 3 }, () => 'a'.repeat(63)).join('.')}.${'b'.repeat(62)}`;
  const longest = overlong.slice(0, -1);

  it.each([
    ['an empty label', 'a..b.bosh', 'has an empty label'],
    ['a label of 64 bytes', `${'x'.repeat(64)}.bosh`, 'has a label longer than 63 bytes (64)'],
    ['a name of 254 characters', overlong, 'is longer than 253 bytes (254)'],
    ['a character wider than a byte', 'w\u20acb.bosh', 'has a character that is not one byte'],
  ])('refuses to encode a record name with %s, naming it', (_what, name, problem) => {
    const packet = query('a.bosh', { type: RRType.PTR });
    const ptr: ResourceRecord = { name: 'a.bosh', ttl: 5, type: RRType.PTR, target: name };
    expect(() => respond(packet, result([ptr]), 'tcp')).toThrow(UnencodableError);
    expect(() => respond(packet, result([ptr]), 'tcp')).toThrow(`cannot encode the name ${JSON.stringify(name)}: it ${problem}`);
  });

  it('writes the longest name there is: 253 characters, 255 bytes', () => {
    expect(nameProblem(longest)).toBeNull();
    const packet = query('a.bosh', { type: RRType.PTR });
    const { parsed } = respond(packet, result([{ name: 'a.bosh', ttl: 5, type: RRType.PTR, target: longest }]), 'tcp');
    expect((parsed.answers[0] as { domain?: string }).domain).toBe(longest);
  });

  it.each([
    ['an IPv4 address with an octet over 255', RRType.A, '10.0.0.256'],
    ['an IPv4 address of three parts', RRType.A, '10.0.1'],
    ['an IPv6 address that is not one', RRType.AAAA, 'fd00::1::2'],
  ])('refuses to encode %s', (_what, type, address) => {
    const packet = query('a.bosh');
    const rr = { name: 'a.bosh', ttl: 5, type, address } as ResourceRecord;
    expect(() => respond(packet, result([rr]))).toThrow(UnencodableError);
  });
});
