// Who may recurse through us (`forward.allow`): a CIDR list, by default loopback and the
// networks of the addresses we listen on, so the daemon never becomes an open resolver.
import { isIP } from 'node:net';
import type { NetworkInterfaceInfo } from 'node:os';
import type { ListenAddress } from '../dns/server.ts';
import { ipv6Bytes } from '../dns/wire.ts';
import { ForwardError } from './upstreams.ts';

interface Cidr {
  bytes: Buffer;
  prefix: number;
}

function addressBytes(text: string): Buffer | null {
  const family = isIP(text);
  if (family === 4) return Buffer.from(text.split('.').map(Number));
  if (family !== 6) return null;
  const bytes = ipv6Bytes(text.split('%')[0]);
  // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? Buffer.from(bytes.subarray(12)) : bytes;
}

export function parseCidr(text: string): Cidr {
  const [ip, prefixText] = text.split('/');
  const bytes = addressBytes(ip);
  const prefix = prefixText === undefined ? (bytes?.length ?? 0) * 8 : Number(prefixText);
  if (!bytes || !Number.isInteger(prefix) || prefix < 0 || prefix > bytes.length * 8) {
    throw new ForwardError('BAD_CIDR', 'forward.allow', `"${text}" is not a CIDR (e.g. "10.0.0.0/8", "::1/128")`);
  }
  return { bytes, prefix };
}

function contains(cidr: Cidr, address: Buffer): boolean {
  if (cidr.bytes.length !== address.length) return false;
  const whole = cidr.prefix >> 3;
  if (!cidr.bytes.subarray(0, whole).equals(address.subarray(0, whole))) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (cidr.bytes[whole] & mask) === (address[whole] & mask);
}

/** Decisions remembered per client address; a node has few clients, so this stays small. */
const MEMO_LIMIT = 4096;

export class AllowList {
  private readonly cidrs: Cidr[];
  private readonly memo = new Map<string, boolean>();

  constructor(readonly entries: string[]) {
    this.cidrs = entries.map(parseCidr);
  }

  allows(address: string): boolean {
    let allowed = this.memo.get(address);
    if (allowed === undefined) {
      const bytes = addressBytes(address);
      allowed = bytes !== null && this.cidrs.some((c) => contains(c, bytes));
      if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
      this.memo.set(address, allowed);
    }
    return allowed;
  }
}

/**
 * The default allow list: loopback, plus the network of every interface address we
 * listen on (all interfaces when listening on 0.0.0.0 or ::).
 */
export function defaultAllow(listen: ListenAddress[], interfaces: Record<string, NetworkInterfaceInfo[] | undefined>): string[] {
  const out = new Set(['127.0.0.0/8', '::1/128']);
  const wildcard = listen.some((l) => l.address === '0.0.0.0' || l.address === '::');
  for (const infos of Object.values(interfaces)) {
    for (const info of infos ?? []) {
      if (info.cidr && (wildcard || listen.some((l) => l.address === info.address))) out.add(info.cidr);
    }
  }
  return [...out];
}
