// Who may recurse: CIDR matching over IPv4, IPv6 and IPv4-mapped clients, and the default list.
import { describe, expect, it } from 'vitest';
import { AllowList, defaultAllow } from '../../src/forward/allow.ts';

describe('allow list', () => {
  it('matches clients against CIDRs of both families, including prefixes that cut a byte', () => {
    const allow = new AllowList(['10.1.0.0/20', '2001:db8::/32', '192.0.2.7']);
    expect(allow.allows('10.1.15.255')).toBe(true);
    expect(allow.allows('10.1.16.0')).toBe(false);
    expect(allow.allows('::ffff:10.1.2.3')).toBe(true);
    expect(allow.allows('2001:db8:ffff::1')).toBe(true);
    expect(allow.allows('2001:db9::1')).toBe(false);
    expect(allow.allows('192.0.2.7')).toBe(true);
    expect(allow.allows('192.0.2.8')).toBe(false);
    expect(allow.allows('not-an-ip')).toBe(false);
  });

  it('rejects a bad CIDR naming the key', () => {
    expect(() => new AllowList(['10.0.0.0/33'])).toThrow(expect.objectContaining({ code: 'BAD_CIDR', message: expect.stringContaining('forward.allow') }));
    expect(() => new AllowList(['ten/8'])).toThrow(/forward\.allow/);
  });

  it('defaults to loopback and the networks of the listen addresses (all interfaces on a wildcard)', () => {
    const interfaces = {
      lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4' as const, mac: '', internal: true, cidr: '127.0.0.1/8' }],
      eth0: [{ address: '10.2.3.4', netmask: '255.255.255.0', family: 'IPv4' as const, mac: '', internal: false, cidr: '10.2.3.4/24' }],
      eth1: [{ address: '172.16.0.9', netmask: '255.255.0.0', family: 'IPv4' as const, mac: '', internal: false, cidr: '172.16.0.9/16' }],
    };
    expect(defaultAllow([{ address: '10.2.3.4', port: 53 }], interfaces)).toEqual(['127.0.0.0/8', '::1/128', '10.2.3.4/24']);
    expect(defaultAllow([{ address: '0.0.0.0', port: 53 }], interfaces)).toEqual(['127.0.0.0/8', '::1/128', '127.0.0.1/8', '10.2.3.4/24', '172.16.0.9/16']);
    const allow = new AllowList(defaultAllow([{ address: '10.2.3.4', port: 53 }], interfaces));
    expect(allow.allows('10.2.3.200')).toBe(true);
    expect(allow.allows('172.16.0.1')).toBe(false);
  });
});
