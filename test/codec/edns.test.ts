// The OPT record every writer of replies and queries uses: read back by an independent
// decoder (dns2's), with the rcode's upper bits, the DO bit and Extended DNS Errors.
import { Packet } from 'dns2';
import { describe, expect, it } from 'vitest';
import { EdeCode, edeOption, optSize, writeOpt, type OptRecord } from '../../src/codec/edns.ts';
import { HEADER_SIZE, RRType } from '../../src/codec/protocol.ts';

/** A header-only message with one additional record: the OPT record. */
function withOpt(opt: OptRecord): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE + optSize(opt));
  buf.writeUInt16BE(0x8000, 2);
  buf.writeUInt16BE(1, 10);
  expect(writeOpt(buf, HEADER_SIZE, opt)).toBe(buf.length);
  return buf;
}

describe('the OPT record', () => {
  it('advertises our UDP size, with version 0 and no flags by default', () => {
    const buf = withOpt({ udpSize: 1232 });
    const [opt] = Packet.parse(buf).additionals;
    expect(opt).toMatchObject({ name: '', type: RRType.OPT, class: 1232 });
    expect(buf.readUInt32BE(HEADER_SIZE + 5)).toBe(0);
  });

  it('carries the rcode above the header\'s four bits, and the DO bit', () => {
    const buf = withOpt({ udpSize: 512, rcode: 16, dnssecOk: true });
    const ttl = buf.readUInt32BE(HEADER_SIZE + 5);
    expect(ttl >>> 24).toBe(1);
    expect(ttl & 0x8000).toBe(0x8000);
  });

  it('holds Extended DNS Errors with their text', () => {
    const buf = withOpt({ udpSize: 1232, options: [edeOption(EdeCode.STALE_ANSWER), edeOption(EdeCode.NO_REACHABLE_AUTHORITY, '192.0.2.1:53: timed out')] });
    const rdata = buf.subarray(HEADER_SIZE + 11);
    expect(rdata.readUInt16BE(0)).toBe(15);
    expect(rdata.readUInt16BE(2)).toBe(2);
    expect(rdata.readUInt16BE(4)).toBe(3);
    expect(rdata.readUInt16BE(6)).toBe(15);
    expect(rdata.readUInt16BE(10)).toBe(22);
    expect(rdata.toString('utf8', 12)).toBe('192.0.2.1:53: timed out');
    expect(buf.readUInt16BE(HEADER_SIZE + 9)).toBe(rdata.length);
  });
});
