// Who may recurse through us (`forward.allow`): a CIDR list, by default loopback and the
// networks of the addresses we listen on, so the daemon never becomes an open resolver.
import type { NetworkInterfaceInfo } from 'node:os';
import type { ListenAddress } from '../dns/server.ts';
import { cidrSet, parseCidr, type Cidr } from '../util/ip.ts';
import { ForwardError } from './upstreams.ts';

/** A `forward.allow` entry as a CIDR; throws naming the key when it is not one. */
export function allowedCidr(text: string): Cidr {
  const cidr = parseCidr(text);
  if (!cidr) throw new ForwardError('BAD_CIDR', 'forward.allow', `"${text}" is not a CIDR (e.g. "10.0.0.0/8", "::1/128")`);
  return cidr;
}

/** Decisions remembered per client address; a node has few clients, so this stays small. */
const MEMO_LIMIT = 4096;

export class AllowList {
  private readonly inside: (address: string) => boolean;
  private readonly memo = new Map<string, boolean>();

  constructor(readonly entries: string[]) {
    this.inside = cidrSet(entries.map(allowedCidr));
  }

  allows(address: string): boolean {
    let allowed = this.memo.get(address);
    if (allowed === undefined) {
      allowed = this.inside(address);
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
