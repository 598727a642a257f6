// The answer cache and its serve-stale decisions (RFC 8767), as pure functions of the
// time passed in: which entries are fresh, which may be served stale, when a failing
// name may be rechecked, when a popular entry is prefetched, and the bounds (entries,
// bytes, least recently used first out, approximately).
import type { StoredMessage } from './message.ts';

export interface CacheSettings {
  maxEntries: number;
  maxBytes: number;
  /** Clamp of every record's TTL, seconds. */
  minTtl: number;
  maxTtl: number;
  /** Cap of the TTL of negative answers (NXDOMAIN, NODATA), seconds. */
  negativeTtl: number;
  prefetch: boolean;
  serveStale: boolean;
  /** How long after expiry an entry may still be served stale, seconds. */
  staleMaxAge: number;
  /** How long after a failed refresh the upstreams are not asked again for that name, seconds. */
  recheck: number;
}

export interface CacheEntry {
  stored: StoredMessage;
  negative: boolean;
  storedAt: number;
  /** Effective TTL after clamps, seconds. */
  ttl: number;
  hits: number;
  /** Used since the evictor last passed it (second-chance eviction). */
  referenced: boolean;
  /** A refresh failed; serve stale without asking upstream until this time (ms). */
  recheckAt: number;
  size: number;
}

export type Lookup =
  | { state: 'fresh'; entry: CacheEntry; ttl: (recordTtl: number) => number; prefetch: boolean }
  | { state: 'stale'; entry: CacheEntry; refresh: boolean }
  | { state: 'miss' };

/** Popular = asked at least this often since stored; prefetched in the last tenth of its TTL. */
const PREFETCH_HITS = 2;
const PREFETCH_FRACTION = 0.1;
/** Rough per-entry overhead beyond the message bytes, for the byte bound. */
const ENTRY_OVERHEAD = 160;

export class ForwardCache {
  private readonly entries = new Map<string, CacheEntry>();
  private bytesUsed = 0;

  constructor(private readonly settings: CacheSettings) {}

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.bytesUsed;
  }

  private clamp(ttl: number): number {
    return Math.min(Math.max(ttl, this.settings.minTtl), this.settings.maxTtl);
  }

  lookup(key: string, now: number): Lookup {
    const entry = this.entries.get(key);
    if (!entry) return { state: 'miss' };
    const expiresAt = entry.storedAt + entry.ttl * 1000;
    if (now >= expiresAt && (!this.settings.serveStale || now >= expiresAt + this.settings.staleMaxAge * 1000)) {
      this.remove(key, entry);
      return { state: 'miss' };
    }
    entry.referenced = true;
    if (now >= expiresAt) return { state: 'stale', entry, refresh: now >= entry.recheckAt };
    entry.hits++;
    const prefetch = this.settings.prefetch && entry.hits >= PREFETCH_HITS && expiresAt - now <= entry.ttl * 1000 * PREFETCH_FRACTION;
    return { state: 'fresh', entry, ttl: this.ttlAt(entry, now), prefetch };
  }

  /** The TTL to send for each record of a fresh entry at `now`: clamped, minus the whole seconds it has been cached. */
  ttlAt(entry: CacheEntry, now: number): (recordTtl: number) => number {
    const age = Math.floor((now - entry.storedAt) / 1000);
    // A negative answer's SOA carries the negative TTL (RFC 2308 §5).
    if (entry.negative) return () => Math.max(0, entry.ttl - age);
    return (recordTtl) => Math.max(0, this.clamp(recordTtl) - age);
  }

  /** Stores an upstream answer (replacing the previous one); null when it is not cacheable. */
  store(key: string, stored: StoredMessage, now: number): CacheEntry | null {
    if (stored.cacheTtl === null) return null;
    const negative = stored.rcode !== 0 || !stored.sections.includes(0);
    const ttl = negative
      ? Math.min(Math.max(stored.cacheTtl, this.settings.minTtl), this.settings.negativeTtl)
      : this.clamp(stored.cacheTtl);
    const size = stored.message.length + key.length + ENTRY_OVERHEAD + stored.ttls.length * 32;
    if (size > this.settings.maxBytes) return null;
    const old = this.entries.get(key);
    if (old) this.remove(key, old);
    const entry: CacheEntry = { stored, negative, storedAt: now, ttl, hits: 0, referenced: false, recheckAt: 0, size };
    this.entries.set(key, entry);
    this.bytesUsed += size;
    this.evict();
    return entry;
  }

  /** A refresh of `key` failed: keep serving what we have, and leave the upstreams alone for a while. */
  refreshFailed(key: string, now: number): void {
    const entry = this.entries.get(key);
    if (entry) entry.recheckAt = now + this.settings.recheck * 1000;
  }

  /**
   * Second chance (CLOCK) instead of strict LRU, so a hit costs no Map mutation: the
   * oldest entry goes unless it was used since it was last looked at here, in which case
   * it moves to the back. Each pass clears one mark, so the loop ends.
   */
  private evict(): void {
    while (this.entries.size > this.settings.maxEntries || this.bytesUsed > this.settings.maxBytes) {
      const oldest = this.entries.entries().next();
      if (oldest.done) break;
      const [key, entry] = oldest.value;
      this.entries.delete(key);
      if (entry.referenced) {
        entry.referenced = false;
        this.entries.set(key, entry);
      } else {
        this.bytesUsed -= entry.size;
      }
    }
  }

  private remove(key: string, entry: CacheEntry): void {
    this.entries.delete(key);
    this.bytesUsed -= entry.size;
  }
}
