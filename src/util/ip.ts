// IP addresses, on node:net: parsing to a canonical form (isIP validates), the bytes the
// topology image stores and an AAAA answer carries, reverse (PTR) names, and CIDR sets
// (BlockList, which also matches IPv4-mapped IPv6 clients against IPv4 networks).
// A leaf module: the topology reader and image, registrations, the DNS wire encoder and
// resolver, and the forwarder's allow list all use this one.
import { BlockList, isIP } from 'node:net';

export interface ParsedIp {
  family: 4 | 6;
  /** Canonical text: dotted quad, or the fully expanded lower-case IPv6 form. */
  canonical: string;
}

export function parseIp(text: string): ParsedIp | null {
  const family = isIP(text);
  // node:net takes only plain dotted quads (no leading zeros): the text is canonical.
  if (family === 4) return { family: 4, canonical: text };
  if (family === 6) return { family: 6, canonical: expandIpv6(text) };
  return null;
}

/** The address in 16 bytes (IPv4 in the first 4), as the topology image stores it. */
export function ipBytes(ip: ParsedIp): Uint8Array {
  const bytes = new Uint8Array(16);
  writeIpBytes(ip, bytes, 0);
  return bytes;
}

/** Writes the address's bytes at `offset` of `out` (4 for IPv4, 16 for IPv6), from its canonical text. */
export function writeIpBytes(ip: ParsedIp, out: Uint8Array, offset: number): void {
  const text = ip.canonical;
  if (ip.family === 4) {
    let value = 0;
    let k = offset;
    for (let c = 0; c < text.length; c++) {
      const code = text.charCodeAt(c);
      if (code === 0x2e) {
        out[k++] = value;
        value = 0;
      } else value = value * 10 + code - 0x30;
    }
    out[k] = value;
    return;
  }
  // Fully expanded: eight groups of four hex digits.
  for (let g = 0; g < 8; g++) {
    const v = parseInt(text.slice(g * 5, g * 5 + 4), 16);
    out[offset + g * 2] = v >> 8;
    out[offset + g * 2 + 1] = v & 0xff;
  }
}

/** The 16 bytes of a valid IPv6 address in any textual form (zone ids dropped, IPv4 tails included). */
export function ipv6Bytes(address: string): Buffer {
  return Buffer.from(ipBytes({ family: 6, canonical: expandIpv6(address) }).buffer);
}

function expandIpv6(text: string): string {
  let body = text.toLowerCase().split('%')[0];
  const lastColon = body.lastIndexOf(':');
  if (body.includes('.', lastColon)) {
    const [a, b, c, d] = body.slice(lastColon + 1).split('.').map(Number);
    body = `${body.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = body.includes('::') ? body.split('::') : [body, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const zeros = new Array<string>(8 - headParts.length - tailParts.length).fill('0');
  return [...headParts, ...zeros, ...tailParts].map((g) => g.padStart(4, '0')).join(':');
}

/** The address a reverse name (in-addr.arpa / ip6.arpa, lower-case, no trailing dot) stands for. */
export function reverseNameToIp(name: string): string | null {
  if (name.endsWith('.in-addr.arpa')) {
    const parts = name.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return null;
    return parts.reverse().map(Number).join('.');
  }
  if (name.endsWith('.ip6.arpa')) {
    const nibbles = name.slice(0, -'.ip6.arpa'.length).split('.');
    if (nibbles.length !== 32 || !nibbles.every((n) => /^[0-9a-f]$/.test(n))) return null;
    const hex = nibbles.reverse().join('');
    return hex.replace(/(.{4})(?!$)/g, '$1:');
  }
  return null;
}

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** A CIDR ("10.0.0.0/8", "::1/128"; a bare address is a single host), or null when it is not one. */
export function parseCidr(text: string): Cidr | null {
  const parts = text.split('/');
  const [address, prefixText, extra] = [parts[0], parts.at(1), parts.at(2)];
  const kind = isIP(address);
  if (kind === 0 || extra !== undefined) return null;
  const bits = kind === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) return null;
  return { address: address.split('%')[0], prefix, family: kind === 4 ? 'ipv4' : 'ipv6' };
}

/** A set of CIDRs that answers whether an address (of either family) is inside one of them. */
export function cidrSet(cidrs: Cidr[]): (address: string) => boolean {
  const list = new BlockList();
  for (const c of cidrs) list.addSubnet(c.address, c.prefix, c.family);
  return (address) => {
    const kind = isIP(address);
    return kind !== 0 && list.check(address.split('%')[0], kind === 4 ? 'ipv4' : 'ipv6');
  };
}

/** A loopback address (127.0.0.0/8 or ::1), as text. */
export function isLoopback(host: string): boolean {
  return host.startsWith('127.') || host === '::1';
}
