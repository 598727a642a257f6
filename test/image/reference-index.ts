// The reference the topology image is checked against: the first version's index, one
// object per instance in JavaScript maps (what the daemon answered from before the image).
// Tests run the same resolver over both and compare the bytes of every answer.
import { matchesGroup, matchesInstance, type Criteria } from '../../src/image/criteria.ts';
import { normalizeName, type AliasMap, type Instance, type Topology } from '../../src/image/instance.ts';
import { expandAlias, instanceName, mergeAliases, type TopologyLookup } from '../../src/image/view.ts';

export interface IndexOptions {
  /** Domains served even when no record lives under them (dns.domains). */
  domains?: string[];
  /** Aliases from the config's aliases directory; merged with the file's own. */
  aliases?: AliasMap;
}

interface GroupEntry {
  group: string;
  network: string;
  deployment: string;
  instances: Instance[];
}

const SEP = '\u0000';

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

export class ReferenceIndex implements TopologyLookup {
  readonly version: number;
  readonly recordCount: number;
  /** False for a topology without any health column data (an unmodified BOSH file). */
  readonly hasHealth: boolean;
  readonly domains: ReadonlySet<string>;
  private readonly groups = new Map<string, GroupEntry>();
  private readonly groupsByDomain = new Map<string, GroupEntry[]>();
  private readonly byGroupId = new Map<string, Instance[]>();
  private readonly byAgent = new Map<string, Instance[]>();
  /** PTR names from the file's `records`; without them, the names come from `ptrInstances`. */
  private readonly ptr = new Map<string, string[]>();
  /** Instances by IP; their PTR names are built on demand (saves two strings per instance). */
  private readonly ptrInstances = new Map<string, Instance | Instance[]>();
  private readonly aliases: AliasMap;

  constructor(topology: Topology, options: IndexOptions = {}) {
    this.version = topology.version;
    this.recordCount = topology.instances.length;
    this.hasHealth = topology.instances.some((i) => i.health !== null);
    const domains = new Set((options.domains ?? []).map(normalizeName));
    for (const i of topology.instances) {
      domains.add(i.domain);
      const key = [i.domain, i.group, i.network, i.deployment].join(SEP);
      let entry = this.groups.get(key);
      if (!entry) {
        entry = { group: i.group, network: i.network, deployment: i.deployment, instances: [] };
        this.groups.set(key, entry);
        push(this.groupsByDomain, i.domain, entry);
      }
      entry.instances.push(i);
      for (const gid of i.groupIds) push(this.byGroupId, `${i.domain}${SEP}${gid}`, i);
      if (i.agentId) push(this.byAgent, i.agentId, i);
      if (!topology.ptrRecords) {
        // Most IPs belong to one instance: keep it bare rather than in a list.
        const seen = this.ptrInstances.get(i.ip);
        if (seen === undefined) this.ptrInstances.set(i.ip, i);
        else if (Array.isArray(seen)) seen.push(i);
        else this.ptrInstances.set(i.ip, [seen, i]);
      }
    }
    for (const [ip, name] of topology.ptrRecords ?? []) push(this.ptr, ip, name);
    this.domains = domains;
    this.aliases = mergeAliases(options.aliases ?? new Map<string, string[]>(), topology.aliases);
  }

  /** The longest served domain that `name` (lower-case, no trailing dot) equals or lies under. */
  servedDomain(name: string): string | null {
    for (let suffix = name; ;) {
      if (this.domains.has(suffix)) return suffix;
      const dot = suffix.indexOf('.');
      if (dot === -1) return null;
      suffix = suffix.slice(dot + 1);
    }
  }

  /** Instances matching every criterion but health. */
  select(criteria: Criteria): Instance[] {
    let candidates: Instance[];
    if (criteria.groupId !== null) {
      candidates = this.byGroupId.get(`${criteria.domain}${SEP}${criteria.groupId}`) ?? [];
    } else if (criteria.group?.kind === 'exact' && criteria.network?.kind === 'exact' && criteria.deployment?.kind === 'exact') {
      const key = [criteria.domain, criteria.group.value, criteria.network.value, criteria.deployment.value].join(SEP);
      candidates = this.groups.get(key)?.instances ?? [];
    } else {
      candidates = [];
      for (const e of this.groupsByDomain.get(criteria.domain) ?? []) {
        if (matchesGroup(criteria, e.group, e.network, e.deployment)) {
          candidates.push(...e.instances);
        }
      }
    }
    return candidates.filter((i) => matchesInstance(criteria, i));
  }

  ptrNames(ip: string): string[] {
    const found = this.ptrInstances.get(ip);
    if (found === undefined) return this.ptr.get(ip) ?? [];
    return (Array.isArray(found) ? found : [found]).flatMap((i) =>
      i.index === null ? [instanceName(i)] : [instanceName(i), instanceName(i, String(i.index))]);
  }

  instancesOfAgent(agentId: string): Instance[] {
    return this.byAgent.get(agentId) ?? [];
  }

  aliasTargets(name: string): string[] | null {
    return expandAlias(this.aliases, name);
  }
}
