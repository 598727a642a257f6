// Which cached answers a topology change can alter. Every answer the fast path caches
// carries one tag saying what it was computed from (one group, one instance name, one
// address, ...); a changed instance bumps the tags of everything it could appear in. So a
// delta re-encodes only the names it touches, and churn elsewhere leaves the cache warm.
// Tags are 32-bit hashes: two tags that collide only cost an extra re-encode, never a
// stale answer, because an instance bumps every tag an answer about it could carry.
import type { Criteria } from './criteria.ts';
import { hashInit, hashNumber, hashText } from './layout.ts';
import type { Instance } from './instance.ts';

/** Never invalidated by a delta (upcheck, malformed names, foreign names): only by a full flush. */
export const STATIC_TAG = 0;

const tag = (...parts: Array<string | number>): number => {
  let h = hashInit();
  for (const p of parts) h = typeof p === 'number' ? hashNumber(h, p) : hashText(h, p);
  return h === STATIC_TAG ? 1 : h >>> 0;
};

const groupTag = (domain: string, group: string, network: string, deployment: string) => tag('g', domain, group, network, deployment);
const idTag = (domain: string, group: string, network: string, deployment: string, id: string) => tag('i', domain, group, network, deployment, id);
const indexTag = (domain: string, group: string, network: string, deployment: string, index: number) => tag('x', domain, group, network, deployment, index);
const globTag = (domain: string) => tag('d', domain);
const shortFormTag = (domain: string, gid: number) => tag('q', domain, gid);
export const agentTag = (agent: string) => tag('a', agent);
export const addressTag = (ip: string) => tag('p', ip);
/** Answers through an alias depend on whatever its targets name. */
export const ALIAS_TAG = tag('alias');

/** The tag of an answer to a name with these criteria. */
export function criteriaTag(c: Criteria): number {
  if (c.groupId !== null) return shortFormTag(c.domain, c.groupId);
  if (c.group?.kind !== 'exact' || c.network?.kind !== 'exact' || c.deployment?.kind !== 'exact') return globTag(c.domain);
  const [g, n, d] = [c.group.value, c.network.value, c.deployment.value];
  if (c.instanceId !== null) return idTag(c.domain, g, n, d, c.instanceId);
  // Other filters only narrow what one index selects.
  if (c.filters.indexes.length === 1) return indexTag(c.domain, g, n, d, c.filters.indexes[0]);
  return groupTag(c.domain, g, n, d);
}

/** Every tag an answer involving `i` can carry. */
export function instanceTags(i: Instance): number[] {
  const tags = [
    groupTag(i.domain, i.group, i.network, i.deployment),
    idTag(i.domain, i.group, i.network, i.deployment, i.id),
    globTag(i.domain),
    addressTag(i.ip),
    ALIAS_TAG,
    ...i.groupIds.map((gid) => shortFormTag(i.domain, gid)),
  ];
  if (i.index !== null) tags.push(indexTag(i.domain, i.group, i.network, i.deployment, i.index));
  if (i.agentId !== null) tags.push(agentTag(i.agentId));
  return tags;
}

/** The tags of every instance in `instances`, for a cache in another thread (transferable). */
export function tagsOf(instances: Iterable<Instance>): Uint32Array {
  const tags: number[] = [];
  for (const i of instances) tags.push(...instanceTags(i));
  return Uint32Array.from(new Set(tags));
}
