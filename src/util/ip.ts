// IP addresses, on node:net: parsing to a canonical form (isIP validates, SocketAddress
// normalises), the bytes a DNS answer carries, reverse (PTR) names, and CIDR sets
// (BlockList, which also matches IPv4-mapped IPv6 clients against IPv4 networks).
// A leaf module: the topology reader, registrations, the DNS wire encoder and the
// forwarder's allow list all use this one.
import { BlockList, isIP, SocketAddress } from 'node:net';

export interface ParsedIp {
  family: 4 | 6;
  /** Canonical text: dotted quad, or the fully expanded lower-case IPv6 form. */
  canonical: string;
}

export function parseIp(text: string): ParsedIp | null {
  const family = isIP(text);
  if (family === 4) return { family: 4, canonical: text.split('.').map(Number).join('.') };
  if (family === 6) {
    const groups = [];
    const bytes = ipv6Bytes(text);
    for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16).padStart(4, '0'));
    return { family: 6, canonical: groups.join(':') };
  }
  return null;
}

/** The 16 bytes of a valid IPv6 address in any textual form (zone ids dropped, IPv4 tails included). */
export function ipv6Bytes(address: string): Buffer {
  // SocketAddress brings every spelling to one compressed form with hex groups only.
  let text = new SocketAddress({ address: address.split('%')[0], family: 'ipv6' }).address;
  const out = Buffer.alloc(16);
  const lastColon = text.lastIndexOf(':');
  const ipv4Tail = text.includes('.', lastColon);
  if (ipv4Tail) {
    text.slice(lastColon + 1).split('.').forEach((part, i) => (out[12 + i] = Number(part)));
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = text.includes('::') ? text.split('::') : [text, undefined];
  const headParts = head ? head.split(':') : [];
  const restParts = rest ? rest.split(':') : [];
  const groups = [...headParts, ...new Array<string>(8 - headParts.length - restParts.length).fill('0'), ...restParts];
  // With an IPv4 tail the last two groups are its bytes, written above.
  const written = ipv4Tail ? 6 : 8;
  for (let i = 0; i < written; i++) out.writeUInt16BE(parseInt(groups[i] || '0', 16), i * 2);
  return out;
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
    return nibbles.reverse().join('').match(/.{4}/g)!.join(':');
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
  const [address, prefixText, extra] = text.split('/');
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
