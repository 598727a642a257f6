// The cache's decisions as pure functions of time: fresh → stale → gone, recheck
// windows, clamps, and the byte bound.
import { describe, expect, it } from 'vitest';
import { decodeQuery, encodeResponse, RRType } from '../../src/codec/index.ts';
import { ForwardCache, type CacheSettings } from '../../src/forward/cache.ts';
import { buildUpstreamQuery, parseUpstreamResponse, type StoredMessage } from '../../src/forward/message.ts';
import { makeQuery } from './packets.ts';

const SETTINGS: CacheSettings = {
  maxEntries: 100, maxBytes: 1 << 20, minTtl: 0, maxTtl: 86400, negativeTtl: 300,
  prefetch: true, serveStale: true, staleMaxAge: 86400, recheck: 30,
};

function answer(name: string, ttl: number, count = 1): StoredMessage {
  const client = makeQuery(name);
  const sent = buildUpstreamQuery(1, client.packet, client.query);
  const decoded = decodeQuery(sent);
  if (!decoded.ok) throw new Error(decoded.reason);
  const answers = Array.from({ length: count }, (_, i) => ({ name, ttl, type: RRType.A, address: `10.0.${i >> 8}.${i & 255}` }));
  const reply = encodeResponse(sent, decoded.query, { rcode: 0, authoritative: false, answers, authority: [], additional: [] }, {
    transport: 'tcp', maxUdpSize: 1232, recursionAvailable: true,
  });
  const parsed = parseUpstreamResponse(reply, sent);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.stored;
}

describe('answer cache', () => {
  it('goes fresh → stale (refreshable unless a refresh just failed) → gone after the stale max age', () => {
    const cache = new ForwardCache(SETTINGS);
    cache.store('k', answer('a.test', 10), 0);
    expect(cache.lookup('k', 9_999)).toMatchObject({ state: 'fresh' });
    expect(cache.lookup('k', 10_000)).toMatchObject({ state: 'stale', refresh: true });
    cache.refreshFailed('k', 10_000);
    expect(cache.lookup('k', 39_999)).toMatchObject({ state: 'stale', refresh: false });
    expect(cache.lookup('k', 40_000)).toMatchObject({ state: 'stale', refresh: true });
    expect(cache.lookup('k', 10_000 + 86_400_000 - 1)).toMatchObject({ state: 'stale' });
    expect(cache.lookup('k', 10_000 + 86_400_000)).toEqual({ state: 'miss' });
    expect(cache.size).toBe(0);
  });

  it('raises TTLs to min_ttl and counts them down by whole seconds', () => {
    const cache = new ForwardCache({ ...SETTINGS, minTtl: 30 });
    cache.store('k', answer('a.test', 5), 0);
    const at = cache.lookup('k', 12_900);
    expect(at.state === 'fresh' && at.ttl(5)).toBe(18);
    expect(cache.lookup('k', 30_000)).toMatchObject({ state: 'stale' });
  });

  it('stays within max_bytes by dropping the least recently used entries', () => {
    const one = answer('big.test', 60, 50);
    const cache = new ForwardCache({ ...SETTINGS, maxBytes: 3 * (one.message.length + 600) });
    for (const key of ['a', 'b', 'c', 'd', 'e']) cache.store(key, one, 0);
    expect(cache.bytes).toBeLessThanOrEqual(3 * (one.message.length + 600));
    expect(cache.size).toBeLessThan(5);
    expect(cache.lookup('a', 1)).toEqual({ state: 'miss' });
    expect(cache.lookup('e', 1)).toMatchObject({ state: 'fresh' });
  });

  it('does not cache an answer larger than the whole cache', () => {
    const cache = new ForwardCache({ ...SETTINGS, maxBytes: 100 });
    expect(cache.store('k', answer('a.test', 60), 0)).toBeNull();
    expect(cache.size).toBe(0);
  });
});
