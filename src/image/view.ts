// What DNS answers from: a compiled base image, plus an overlay of the changes that have
// arrived since it was built (deltas), plus the aliases and configured domains. Applying a
// delta costs O(changed instances) — a mask bit on the base and a few map entries — never
// O(topology). The topology worker compacts the overlay into a new base image in the
// background; this view is then rebuilt over it with the deltas the image does not hold.
import { matchesGroup, matchesInstance, type Criteria } from './criteria.ts';
import { ImageBuilder } from './builder.ts';
import { TopologyImage } from './image.ts';
import { normalizeName, type AliasMap, type Instance } from './instance.ts';

/** What the resolver asks of a topology (the image view implements it). */
export interface TopologyLookup {
  readonly version: number;
  readonly recordCount: number;
  /** False for a topology without any health data (an unmodified BOSH file). */
  readonly hasHealth: boolean;
  /** The longest served domain that `name` (lower-case, no trailing dot) equals or lies under. */
  servedDomain(name: string): string | null;
  /** Instances matching every criterion but health. */
  select(criteria: Criteria): Instance[];
  ptrNames(ip: string): string[];
  instancesOfAgent(agentId: string): Instance[];
  aliasTargets(name: string): string[] | null;
}

/** Changes to instances since a base image, in the order they happened. */
export interface TopologyDelta {
  /** Increases by one per delta from one topology worker. */
  seq: number;
  /** The topology version (revision) after this delta. */
  version: number;
  /** Instance names (`id.group.network.deployment.domain`) that are gone or replaced. */
  removes: string[];
  /** Instances added or replacing one of the same name. */
  adds: Instance[];
}

/** What a delta changed, for the caches in front of the view. */
export interface ViewChange {
  /** Every instance removed, added or replaced (old and new versions). */
  instances: Instance[];
  /** The answer to every name may have changed (served domains, or health data appeared or went). */
  everything: boolean;
}

export function instanceName(i: Instance, first: string = i.id): string {
  return `${first}.${i.group}.${i.network}.${i.deployment}.${i.domain}`;
}

const SEP = '\u0000';
const groupKey = (domain: string, group: string, network: string, deployment: string) => [domain, group, network, deployment].join(SEP);

/** Exact aliases first, then `*.<parent>` (any one label), then `_.<parent>` with the query's first label copied in. */
export function expandAlias(aliases: AliasMap, name: string): string[] | null {
  const exact = aliases.get(name);
  if (exact) return exact;
  const dot = name.indexOf('.');
  if (dot <= 0) return null;
  const first = name.slice(0, dot);
  const parent = name.slice(dot + 1);
  const wildcard = aliases.get(`*.${parent}`);
  if (wildcard) return wildcard;
  const placeholder = aliases.get(`_.${parent}`);
  if (placeholder) return placeholder.map((t) => (t.startsWith('_.') ? first + t.slice(1) : t));
  return null;
}

/** The config's aliases, then the topology file's own for the same name. */
export function mergeAliases(fromConfig: AliasMap, fromFile: AliasMap): AliasMap {
  const merged = new Map(fromConfig);
  for (const [name, targets] of fromFile) merged.set(name, [...(merged.get(name) ?? []), ...targets]);
  return merged;
}

/** A keyed multimap: key → (instance name → instance). */
class Multimap {
  private readonly map = new Map<string, Map<string, Instance>>();
  add(key: string, name: string, i: Instance): void {
    let bucket = this.map.get(key);
    if (!bucket) this.map.set(key, (bucket = new Map<string, Instance>()));
    bucket.set(name, i);
  }

  remove(key: string, name: string): void {
    const bucket = this.map.get(key);
    if (!bucket) return;
    bucket.delete(name);
    if (bucket.size === 0) this.map.delete(key);
  }

  get(key: string): Iterable<Instance> {
    return this.map.get(key)?.values() ?? [];
  }

  keys(): Iterable<string> {
    return this.map.keys();
  }
}

/** The instances added since the base image, indexed the ways the resolver looks them up. */
class Overlay {
  readonly byName = new Map<string, Instance>();
  private readonly byGroup = new Multimap();
  private readonly byGroupId = new Multimap();
  private readonly byAgent = new Multimap();
  private readonly byIp = new Multimap();
  private readonly byId = new Multimap();

  add(name: string, i: Instance): void {
    this.byName.set(name, i);
    this.each(name, i, (map, key) => map.add(key, name, i));
  }

  remove(name: string): Instance | undefined {
    const i = this.byName.get(name);
    if (!i) return undefined;
    this.byName.delete(name);
    this.each(name, i, (map, key) => map.remove(key, name));
    return i;
  }

  private each(name: string, i: Instance, fn: (map: Multimap, key: string) => void): void {
    fn(this.byGroup, groupKey(i.domain, i.group, i.network, i.deployment));
    for (const gid of i.groupIds) fn(this.byGroupId, `${i.domain}${SEP}${gid}`);
    if (i.agentId) fn(this.byAgent, i.agentId);
    fn(this.byIp, i.ip);
    fn(this.byId, i.id);
  }

  group(domain: string, group: string, network: string, deployment: string): Iterable<Instance> {
    return this.byGroup.get(groupKey(domain, group, network, deployment));
  }

  groupKeys(): Iterable<string> {
    return this.byGroup.keys();
  }

  groupById(domain: string, gid: number): Iterable<Instance> {
    return this.byGroupId.get(`${domain}${SEP}${gid}`);
  }

  agent(agent: string): Iterable<Instance> {
    return this.byAgent.get(agent);
  }

  ip(ip: string): Iterable<Instance> {
    return this.byIp.get(ip);
  }

  id(id: string): Iterable<Instance> {
    return this.byId.get(id);
  }
}

export interface ViewOptions {
  /** Aliases: the config's alias files merged with the topology file's own. */
  aliases?: AliasMap;
  /** Domains served even when no record lives under them (dns.domains). */
  domains?: string[];
}

export class TopologyView implements TopologyLookup {
  version: number;
  private readonly overlay = new Overlay();
  /** Base ordinals removed or replaced by a delta. */
  private readonly masked = new Set<number>();
  private readonly configDomains: ReadonlySet<string>;
  private readonly baseDomains: ReadonlySet<string>;
  /** Live instances per domain, counted only for domains a delta touched (starting from the base). */
  private readonly domainCounts = new Map<string, number>();
  private healthCount: number;
  private aliases: AliasMap;
  /** The last delta applied (0: none). */
  seq = 0;

  constructor(readonly base: TopologyImage, options: ViewOptions = {}) {
    this.version = base.version;
    this.aliases = options.aliases ?? new Map<string, string[]>();
    this.configDomains = new Set((options.domains ?? []).map(normalizeName));
    this.baseDomains = new Set(base.domains());
    this.healthCount = base.healthCount;
  }

  get recordCount(): number {
    return this.base.instanceCount - this.masked.size + this.overlay.byName.size;
  }

  get hasHealth(): boolean {
    return this.healthCount > 0;
  }

  /** Applies one delta in place; O(instances it names). */
  apply(delta: TopologyDelta): ViewChange {
    const hadHealth = this.hasHealth;
    const domainsBefore = this.domainSignature();
    const instances: Instance[] = [];
    for (const name of delta.removes) instances.push(...this.remove(name));
    for (const i of delta.adds) {
      const name = instanceName(i);
      instances.push(...this.remove(name), i);
      this.overlay.add(name, i);
      this.count(i, 1);
    }
    this.version = delta.version;
    this.seq = delta.seq;
    return { instances, everything: hadHealth !== this.hasHealth || domainsBefore !== this.domainSignature() };
  }

  /** Every live instance, base (not masked) then overlay: what a compaction builds from. */
  * instances(): Generator<Instance> {
    for (let o = 0; o < this.base.instanceCount; o++) if (!this.masked.has(o)) yield this.base.instance(o);
    yield* this.overlay.byName.values();
  }

  /** The live instance of that name, if any. */
  get(name: string): Instance | undefined {
    const added = this.overlay.byName.get(name);
    if (added) return added;
    const o = this.baseOrdinals(name).at(0);
    return o === undefined ? undefined : this.base.instance(o);
  }

  /** Live instances with this id (a presence id names one; a BOSH file may repeat it per network). */
  withId(id: string): Instance[] {
    return [...this.live(this.base.byId(id)), ...this.overlay.id(id)];
  }

  /** The cells that have live instances: O(topology), for the control plane only. */
  cells(): Set<string | null> {
    const cells = new Set<string | null>();
    for (let o = 0; o < this.base.instanceCount; o++) if (!this.masked.has(o)) cells.add(this.base.cellOf(o));
    for (const i of this.overlay.byName.values()) cells.add(i.cellId);
    return cells;
  }

  /** New alias definitions (the alias files changed); the caller flushes what was cached from the old ones. */
  setAliases(aliases: AliasMap): void {
    this.aliases = aliases;
  }

  /** About how many instances changed since the base image (a change masks one and adds one): how far a compaction is due. */
  get pending(): number {
    return Math.max(this.masked.size, this.overlay.byName.size);
  }

  private remove(name: string): Instance[] {
    const gone: Instance[] = [];
    const added = this.overlay.remove(name);
    if (added) gone.push(added);
    for (const o of this.baseOrdinals(name)) {
      this.masked.add(o);
      gone.push(this.base.instance(o));
    }
    for (const i of gone) this.count(i, -1);
    return gone;
  }

  /** Unmasked base ordinals named `name`. */
  private baseOrdinals(name: string): number[] {
    const labels = name.split('.');
    if (labels.length < 5) return [];
    const entry = this.base.findGroup(labels.slice(4).join('.'), labels[1], labels[2], labels[3]);
    if (entry < 0) return [];
    return this.base.byId(labels[0]).filter((o) => this.base.groupOf(o) === entry && !this.masked.has(o));
  }

  private count(i: Instance, by: 1 | -1): void {
    if (i.health !== null) this.healthCount += by;
    const now = this.domainCount(i.domain) + by;
    this.domainCounts.set(i.domain, now);
  }

  private domainCount(domain: string): number {
    let n = this.domainCounts.get(domain);
    if (n === undefined) {
      n = 0;
      for (const g of this.base.groupsOf(domain)) n += this.base.members(g.entry).length;
      this.domainCounts.set(domain, n);
    }
    return n;
  }

  /** The domains with live instances that differ from the base's (touched domains only). */
  private domainSignature(): string {
    return [...this.domainCounts].filter(([d, n]) => (n > 0) !== this.baseDomains.has(d)).map(([d]) => d).sort().join(' ');
  }

  /** Domains with live instances, sorted. */
  liveDomains(): string[] {
    const domains = new Set([...this.baseDomains].filter((d) => this.domainCounts.get(d) !== 0));
    for (const [d, n] of this.domainCounts) if (n > 0) domains.add(d);
    return [...domains].sort();
  }

  private isServed(domain: string): boolean {
    if (this.configDomains.has(domain)) return true;
    const counted = this.domainCounts.get(domain);
    return counted === undefined ? this.baseDomains.has(domain) : counted > 0;
  }

  servedDomain(name: string): string | null {
    for (let suffix = name; ;) {
      if (this.isServed(suffix)) return suffix;
      const dot = suffix.indexOf('.');
      if (dot === -1) return null;
      suffix = suffix.slice(dot + 1);
    }
  }

  select(criteria: Criteria): Instance[] {
    const { base } = this;
    const { domain } = criteria;
    let ordinals: Iterable<number>;
    const overlay: Instance[] = [];
    if (criteria.groupId !== null) {
      ordinals = base.byGroupId(domain, criteria.groupId);
      overlay.push(...this.overlay.groupById(domain, criteria.groupId));
    } else if (criteria.group?.kind === 'exact' && criteria.network?.kind === 'exact' && criteria.deployment?.kind === 'exact') {
      const [g, n, d] = [criteria.group.value, criteria.network.value, criteria.deployment.value];
      const entry = base.findGroup(domain, g, n, d);
      const { instanceId, filters } = criteria;
      // Narrow to the instances the name can mean before materialising any; matching decides.
      if (entry < 0) ordinals = [];
      else if (instanceId !== null) ordinals = base.byId(instanceId).filter((o) => base.groupOf(o) === entry);
      else if (filters.indexes.length === 1) ordinals = base.byIndex(entry, filters.indexes[0]);
      else ordinals = base.members(entry);
      overlay.push(...this.overlay.group(domain, g, n, d));
    } else {
      const list: number[] = [];
      for (const g of base.groupsOf(domain)) if (matchesGroup(criteria, g.group, g.network, g.deployment)) list.push(...base.members(g.entry));
      ordinals = list;
      for (const key of this.overlay.groupKeys()) {
        const [d, group, network, deployment] = key.split(SEP);
        if (d === domain && matchesGroup(criteria, group, network, deployment)) overlay.push(...this.overlay.group(d, group, network, deployment));
      }
    }
    const out: Instance[] = [];
    for (const o of ordinals) {
      if (this.masked.has(o)) continue;
      const i = base.instance(o);
      if (matchesInstance(criteria, i)) out.push(i);
    }
    for (const i of overlay) if (matchesInstance(criteria, i)) out.push(i);
    return out;
  }

  ptrNames(ip: string): string[] {
    // A file with BOSH's records list names its addresses itself; deltas come only from
    // the syncer, whose files never carry that list.
    if (this.base.hasPtrRecords) return this.base.ptrRecordNames(ip);
    const found = [...this.live(this.base.byIp(ip)), ...this.overlay.ip(ip)];
    return found.flatMap((i) => (i.index === null ? [instanceName(i)] : [instanceName(i), instanceName(i, String(i.index))]));
  }

  instancesOfAgent(agentId: string): Instance[] {
    return [...this.live(this.base.byAgent(agentId)), ...this.overlay.agent(agentId)];
  }

  aliasTargets(name: string): string[] | null {
    return expandAlias(this.aliases, name);
  }

  private live(ordinals: number[]): Instance[] {
    return ordinals.filter((o) => !this.masked.has(o)).map((o) => this.base.instance(o));
  }
}

/** A view of no instances (before any topology is loaded). */
export function emptyView(options: ViewOptions = {}): TopologyView {
  return new TopologyView(new TopologyImage(new ImageBuilder(0).finish({ version: 0, ptrRecords: null })), options);
}
