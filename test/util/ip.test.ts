// The one IP module: canonical forms (what PTR names and registrations compare), the
// bytes an AAAA answer carries, reverse names, and CIDR sets for the forwarder's allow list.
import { describe, expect, it } from 'vitest';
import { cidrSet, ipv6Bytes, parseCidr, parseIp, reverseNameToIp } from '../../src/util/ip.ts';
import { required } from '../helpers/required.ts';

describe('IP addresses', () => {
  it('gives IPv6 in every spelling one fully expanded form, and rejects what is not an address', () => {
    const expanded = '2001:0db8:0000:0000:0000:0000:0000:0001';
    for (const text of ['2001:db8::1', '2001:DB8:0:0:0:0:0:1', '2001:0db8:0000:0000:0000:0000:0000:0001']) {
      expect(parseIp(text)).toEqual({ family: 6, canonical: expanded });
    }
    expect(parseIp('::ffff:10.0.0.1')).toEqual({ family: 6, canonical: '0000:0000:0000:0000:0000:ffff:0a00:0001' });
    expect(parseIp('10.0.0.1')).toEqual({ family: 4, canonical: '10.0.0.1' });
    for (const bad of ['10.0.0.256', '10.01.0.1', '1::2::3', 'web-0', '']) expect(parseIp(bad), bad).toBeNull();
  });

  it('writes IPv6 addresses in any text form as 16 bytes', () => {
    expect(ipv6Bytes('fd00::1:10').toString('hex')).toBe('fd000000000000000000000000010010');
    expect(ipv6Bytes('::ffff:10.0.0.1').toString('hex')).toBe('00000000000000000000ffff0a000001');
    expect(ipv6Bytes('fd00:0000:0000:0000:0000:0000:0001:0010').toString('hex')).toBe('fd000000000000000000000000010010');
    expect(ipv6Bytes('fe80::1%eth0').toString('hex')).toBe('fe800000000000000000000000000001');
  });

  it('reads reverse names back into the canonical address', () => {
    expect(reverseNameToIp('10.0.0.10.in-addr.arpa')).toBe('10.0.0.10');
    const nibbles = '20010db8000000000000000000000001'.split('').reverse().join('.');
    expect(reverseNameToIp(`${nibbles}.ip6.arpa`)).toBe('2001:0db8:0000:0000:0000:0000:0000:0001');
    expect(reverseNameToIp('300.0.0.10.in-addr.arpa')).toBeNull();
  });

  it('matches clients against CIDRs, an IPv4-mapped IPv6 client against IPv4 networks', () => {
    const inside = cidrSet(['127.0.0.0/8', '::1/128', '10.1.0.0/16'].map((c) => required(parseCidr(c), c)));
    expect(inside('127.9.9.9')).toBe(true);
    expect(inside('::ffff:127.0.0.1')).toBe(true);
    expect(inside('::1')).toBe(true);
    expect(inside('10.1.200.3')).toBe(true);
    expect(inside('10.2.0.1')).toBe(false);
    expect(inside('not an address')).toBe(false);
    for (const bad of ['10.0.0.0/33', '10.0.0.0/x', '10.0.0.0/8/1', 'nope/8']) expect(parseCidr(bad), bad).toBeNull();
    expect(parseCidr('10.0.0.1')).toEqual({ address: '10.0.0.1', prefix: 32, family: 'ipv4' });
  });
});
