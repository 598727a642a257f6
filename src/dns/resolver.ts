// Answering platform names (the README's "Names" rules) from a topology view. Returns a value — rcode,
// records, flags — that the encoder turns into bytes; null means "not a name we serve"
// so the server can pass it on (forwarder) or refuse it. With it comes the cache tag:
// what the answer was computed from, so the fast path knows which deltas change it; and
// for an answer of several records, a way to have them again in another random order
// from the same lookup, so the fast path's ring of encodings costs one lookup.
import { applyHealth, CriteriaError, parseCriteria } from '../image/criteria.ts';
import { reverseNameToIp } from '../util/ip.ts';
import type { Instance } from '../image/instance.ts';
import { instanceName, type TopologyLookup } from '../image/view.ts';
import { addressTag, agentTag, ALIAS_TAG, criteriaTag, STATIC_TAG } from '../image/cache-tags.ts';
import { CLASS_IN, Rcode, RRType, type DnsResult, type Question, type ResourceRecord } from '../codec/index.ts';

export interface ResolverOptions {
  /** TTL of positive answers, seconds. */
  ttl: number;
  /** TTL of negative answers: the SOA minimum (RFC 2308). */
  negativeTtl: number;
}

export const UPCHECK_NAME = 'upcheck.presence-dns';
const UPCHECK_DOMAIN = 'presence-dns';
const AGENT_DOMAIN = 'bosh-agent-id';
const MAX_ALIAS_DEPTH = 3;
const CLASS_ANY = 255;

type Lookup =
  | { kind: 'instances'; instances: Instance[]; domain: string; tag: number }
  | { kind: 'nxdomain'; domain: string; tag: number }
  | { kind: 'formerr'; domain: string };

export interface Resolution {
  /** null: not a platform name. */
  result: DnsResult | null;
  /** What the answer depends on (cache-tags.ts). */
  tag: number;
  /** The same records shuffled again (from this lookup); null when their order cannot vary. */
  reorder: (() => DnsResult) | null;
}

/** What one lookup answers: a result in a random order, and how to draw another. */
interface Ordered {
  result: DnsResult;
  reorder: (() => DnsResult) | null;
}

/** An SRV answer's part for one instance: its SRV records and the address record of its target. */
interface SrvTarget {
  answers: ResourceRecord[];
  address: ResourceRecord;
}

/** A result drawn now, and drawn again on `reorder` when there are at least two things to order. */
function ordered(things: number, draw: () => DnsResult): Ordered {
  return { result: draw(), reorder: things > 1 ? draw : null };
}

function shuffle<T>(items: T[]): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

export class PlatformResolver {
  constructor(private readonly options: ResolverOptions) {}

  resolve(index: TopologyLookup, question: Question): Resolution {
    if (question.class !== CLASS_IN && question.class !== CLASS_ANY) return { result: null, tag: STATIC_TAG, reorder: null };
    const name = question.name.toLowerCase();
    if (name === UPCHECK_NAME) {
      const result = this.answer(UPCHECK_DOMAIN, index, question.type === RRType.A || question.type === RRType.ANY
        ? [{ name: question.name, ttl: this.options.ttl, type: RRType.A, address: '127.0.0.1' }]
        : []);
      return { result, tag: STATIC_TAG, reorder: null };
    }
    if (name.endsWith('.in-addr.arpa') || name.endsWith('.ip6.arpa')) return this.reverse(index, question, name);
    const lookup = this.lookup(index, name, question.type === RRType.SRV, 0);
    if (!lookup) return { result: null, tag: STATIC_TAG, reorder: null };
    switch (lookup.kind) {
      case 'formerr':
        return { result: { rcode: Rcode.FORMERR, authoritative: true, answers: [], authority: [], additional: [] }, tag: STATIC_TAG, reorder: null };
      case 'nxdomain':
        return { result: { ...this.answer(lookup.domain, index, []), rcode: Rcode.NXDOMAIN }, tag: lookup.tag, reorder: null };
      case 'instances':
        return { ...this.instanceAnswer(index, question, lookup.domain, lookup.instances), tag: lookup.tag };
    }
  }

  /** Instances a name stands for, before the record type is considered. */
  private lookup(index: TopologyLookup, name: string, srv: boolean, depth: number): Lookup | null {
    const targets = index.aliasTargets(name);
    if (targets) return this.aliasLookup(index, name, targets, srv, depth);
    if (name.endsWith(`.${AGENT_DOMAIN}`)) {
      const agent = name.slice(0, -AGENT_DOMAIN.length - 1);
      const instances = index.instancesOfAgent(agent);
      const tag = agentTag(agent);
      return instances.length ? { kind: 'instances', instances, domain: AGENT_DOMAIN, tag } : { kind: 'nxdomain', domain: AGENT_DOMAIN, tag };
    }
    const domain = index.servedDomain(name);
    if (domain === null) return null;
    if (name === domain) return { kind: 'nxdomain', domain, tag: STATIC_TAG };
    let criteria;
    try {
      criteria = parseCriteria(name.slice(0, -domain.length - 1).split('.'), domain, { srv });
    } catch (err) {
      if (err instanceof CriteriaError) return { kind: 'formerr', domain };
      throw err;
    }
    const tag = criteriaTag(criteria);
    const matched = index.select(criteria);
    if (!matched.length) return { kind: 'nxdomain', domain, tag };
    const instances = applyHealth(criteria.filters.health, matched, index.hasHealth);
    return { kind: 'instances', instances, domain, tag };
  }

  private aliasLookup(index: TopologyLookup, name: string, targets: string[], srv: boolean, depth: number): Lookup {
    const zone = name.slice(name.indexOf('.') + 1) || name;
    if (depth >= MAX_ALIAS_DEPTH) return { kind: 'nxdomain', domain: zone, tag: ALIAS_TAG };
    const found = new Set<Instance>();
    let exists = false;
    for (const target of targets) {
      const result = this.lookup(index, target, srv, depth + 1);
      if (result?.kind !== 'instances') continue;
      exists = true;
      for (const i of result.instances) found.add(i);
    }
    return exists ? { kind: 'instances', instances: [...found], domain: zone, tag: ALIAS_TAG } : { kind: 'nxdomain', domain: zone, tag: ALIAS_TAG };
  }

  private instanceAnswer(index: TopologyLookup, question: Question, domain: string, instances: Instance[]): Ordered {
    const { ttl } = this.options;
    const owner = question.name;
    const addresses = (family: 4 | 6 | null): Ordered => {
      const records = instances
        .filter((i) => family === null || i.family === family)
        .map((i): ResourceRecord => ({ name: owner, ttl, type: i.family === 4 ? RRType.A : RRType.AAAA, address: i.ip }));
      return ordered(records.length, () => this.answer(domain, index, shuffle(records)));
    };
    switch (question.type) {
      case RRType.A:
        return addresses(4);
      case RRType.AAAA:
        return addresses(6);
      case RRType.ANY:
        return addresses(null);
      case RRType.SRV:
        return this.srvAnswer(index, question, domain, instances);
      default:
        return { result: this.answer(domain, index, []), reorder: null };
    }
  }

  /** One SRV per instance and named port (just the asked one under `_<port>._tcp`), the instances in random order. */
  private srvAnswer(index: TopologyLookup, question: Question, domain: string, instances: Instance[]): Ordered {
    const { ttl } = this.options;
    const labels = question.name.toLowerCase().split('.');
    const service = labels[0].startsWith('_') && labels[1]?.startsWith('_') ? labels[0].slice(1) : null;
    const targets: SrvTarget[] = [];
    for (const i of instances) {
      const ports = Object.entries(i.ports).filter(([portName]) => service === null || portName === service);
      if (!ports.length) continue;
      const target = instanceName(i);
      targets.push({
        answers: ports.map(([, port]): ResourceRecord => ({ name: question.name, ttl, type: RRType.SRV, priority: 0, weight: 1, port, target })),
        address: { name: target, ttl, type: i.family === 4 ? RRType.A : RRType.AAAA, address: i.ip },
      });
    }
    return ordered(targets.length, () => {
      const order = shuffle(targets);
      return { ...this.answer(domain, index, order.flatMap((t) => t.answers)), additional: order.map((t) => t.address) };
    });
  }

  private reverse(index: TopologyLookup, question: Question, name: string): Resolution {
    const ip = reverseNameToIp(name);
    const tag = ip ? addressTag(ip) : STATIC_TAG;
    const names = ip ? index.ptrNames(ip) : [];
    if (!names.length) return { result: null, tag, reorder: null };
    const zone = name.endsWith('.ip6.arpa') ? 'ip6.arpa' : 'in-addr.arpa';
    const answers: ResourceRecord[] = question.type === RRType.PTR || question.type === RRType.ANY
      ? names.map((target) => ({ name: question.name, ttl: this.options.ttl, type: RRType.PTR, target }))
      : [];
    return { result: this.answer(zone, index, answers), tag, reorder: null };
  }

  /** An authoritative NOERROR; an empty answer carries the zone's SOA for negative caching. */
  private answer(domain: string, index: TopologyLookup, answers: ResourceRecord[]): DnsResult {
    return {
      rcode: Rcode.NOERROR,
      authoritative: true,
      answers,
      authority: answers.length ? [] : [this.soa(domain, index)],
      additional: [],
    };
  }

  private soa(domain: string, index: TopologyLookup): ResourceRecord {
    const { negativeTtl } = this.options;
    return {
      name: domain, ttl: negativeTtl, type: RRType.SOA,
      mname: `ns.${domain}`, rname: `hostmaster.${domain}`,
      serial: index.version >>> 0, refresh: 3600, retry: 600, expire: 86400, minimum: negativeTtl,
    };
  }
}
