// The forwarder against real DNS servers on loopback, with an injected clock: cache
// hits and TTL countdown, serve-stale (TTL 30, EDE 3), the recheck window, the client
// timer, max_age, negative caching, in-flight sharing, failover and health probes.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from '../../src/admin/metrics.ts';
import { configSchema } from '../../src/config/schema.ts';
import type { Client } from '../../src/dns/handler.ts';
import { RRType } from '../../src/codec/index.ts';
import { Forwarder } from '../../src/forward/index.ts';
import { createLogger } from '../../src/log.ts';
import { waitFor } from '../helpers/daemon.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { required } from '../helpers/required.ts';
import { makeQuery, readReply, type QueryOptions, type ReadReply } from './packets.ts';
import { TestUpstream, type ZoneEntry } from './upstream-server.ts';

const ZONE: Record<string, ZoneEntry> = {
  'www.example.com': { addresses: ['192.0.2.1'], ttl: 60 },
  'api.example.com': { addresses: ['192.0.2.2'], ttl: 60 },
  'big.example.com': { addresses: Array.from({ length: 100 }, (_, i) => `198.51.100.${i + 1}`), ttl: 60 },
};
const LOCAL: Client = { address: '127.0.0.1', port: 40000, transport: 'udp' };
const STALE_ANSWER = 3;
const NO_REACHABLE_AUTHORITY = 22;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function upstream(zone = ZONE): Promise<TestUpstream> {
  const u = await TestUpstream.start(zone);
  cleanups.push(() => u.stop());
  return u;
}

async function forwarder(forward: Record<string, unknown>, clock = new ManualClock()) {
  const metrics = new Registry();
  const fwd = new Forwarder({
    config: configSchema.parse({ forward }).forward,
    listen: [{ address: '127.0.0.1', port: 5353 }],
    maxUdpSize: 1232,
    metrics,
    logger: createLogger('silent'),
    clock,
  });
  await fwd.start();
  cleanups.push(() => fwd.stop());
  const ask = async (name: string, options: QueryOptions = {}, client: Client = LOCAL): Promise<ReadReply | null> => {
    const { packet, query } = makeQuery(name, options);
    const answer = await fwd.handle(query, packet, client);
    if (!answer) return null;
    if ('packet' in answer) return readReply(answer.packet);
    return {
      id: query.id, rcode: answer.result.rcode, truncated: false, recursionAvailable: true, question: name,
      answers: [], authority: [], additional: [], addresses: [],
      ede: (answer.ednsOptions ?? []).filter((o) => o.code === 15).map((o) => o.data.readUInt16BE(0)),
    };
  };
  /** ask() for a question the forwarder must answer: its reply, or an error saying there was none. */
  const answered = async (...question: Parameters<typeof ask>): Promise<ReadReply> => required(await ask(...question), `an answer for ${question[0]}`);
  const counter = (name: string, labels?: Record<string, string>) => metrics.value(name, labels);
  return { fwd, clock, ask, answered, counter };
}

/** Lets socket events and promise callbacks run (no time passes on the manual clock). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

describe('cache', () => {
  it('answers through the upstream once, then from the cache with the TTL counting down', async () => {
    const up = await upstream();
    const { answered, clock, counter } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`] });
    const first = await answered('WWW.Example.com', { id: 7 });
    expect(first).toMatchObject({ id: 7, rcode: 0, question: 'WWW.Example.com', addresses: ['192.0.2.1'], recursionAvailable: true });
    expect(first.answers[0].ttl).toBe(60);
    clock.advance(10_500);
    const second = await answered('www.example.com', { id: 8 });
    expect(second).toMatchObject({ id: 8, question: 'www.example.com', addresses: ['192.0.2.1'] });
    expect(second.answers[0].ttl).toBe(50);
    expect(up.count('www.example.com')).toBe(1);
    expect(await counter('coredns_cache_hits_total', { type: 'success' })).toBe(1);
    expect(await counter('coredns_cache_misses_total')).toBe(1);
    expect(await counter('coredns_forward_requests_total', { to: `127.0.0.1:${up.port}` })).toBe(1);
  });

  it('clamps TTLs to cache.max_ttl and asks again when that runs out', async () => {
    const up = await upstream();
    const { answered, clock } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`], cache: { max_ttl: 20 } });
    expect((await answered('www.example.com')).answers[0].ttl).toBe(20);
    clock.advance(19_000);
    expect((await answered('www.example.com')).answers[0].ttl).toBe(1);
    clock.advance(1_000);
    expect((await answered('www.example.com')).answers[0].ttl).toBe(20);
    expect(up.count('www.example.com')).toBe(2);
  });

  it('caches NXDOMAIN as an answer for the SOA minimum (RFC 2308)', async () => {
    const up = await upstream();
    const { answered, clock, counter } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`] });
    const first = await answered('nope.example.com');
    expect(first).toMatchObject({ rcode: 3, ede: [] });
    expect(first.authority.map((r) => [r.type, r.ttl])).toEqual([[RRType.SOA, 45]]);
    clock.advance(44_000);
    expect((await answered('nope.example.com')).authority[0].ttl).toBe(1);
    expect(await counter('coredns_cache_hits_total', { type: 'denial' })).toBe(1);
    clock.advance(1_000);
    expect((await answered('nope.example.com')).rcode).toBe(3);
    expect(up.count('nope.example.com')).toBe(2);
  });

  it('evicts the least recently used entry beyond cache.max_entries', async () => {
    const up = await upstream();
    const { ask } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`], cache: { max_entries: 2 } });
    await ask('www.example.com');
    await ask('api.example.com');
    await ask('www.example.com');
    await ask('nope.example.com');
    await ask('www.example.com');
    await ask('api.example.com');
    expect(up.count('www.example.com')).toBe(1);
    expect(up.count('api.example.com')).toBe(2);
  });

  it('prefetches a popular entry in the last tenth of its TTL, so it never expires', async () => {
    const up = await upstream();
    const { ask, answered, clock } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`] });
    await ask('www.example.com');
    clock.advance(10_000);
    await ask('www.example.com');
    clock.advance(45_000);
    expect((await answered('www.example.com')).answers[0].ttl).toBe(5);
    await waitFor(() => up.count('www.example.com') === 2, 20_000, 'prefetch query');
    await settle();
    clock.advance(10_000);
    const later = await answered('www.example.com');
    expect(later).toMatchObject({ ede: [], addresses: ['192.0.2.1'] });
    expect(later.answers[0].ttl).toBe(50);
    expect(up.count('www.example.com')).toBe(2);
  });

  it('identical questions in flight share one upstream query', async () => {
    const up = await upstream();
    const { answered } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`] });
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => answered('api.example.com', { id: i })));
    expect(replies.map((r) => r.id)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(replies.every((r) => r.addresses[0] === '192.0.2.2')).toBe(true);
    expect(up.count('api.example.com')).toBe(1);
  });
});

describe('serve-stale (RFC 8767)', () => {
  it('answers an expired name with TTL 30 and EDE 3 while the upstream is down, fresh again once it is back', async () => {
    const up = await upstream();
    const { ask, answered, clock, counter } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`] });
    await ask('www.example.com');
    await up.stop();
    clock.advance(61_000);
    const stale = await answered('www.example.com');
    expect(stale).toMatchObject({ rcode: 0, addresses: ['192.0.2.1'], ede: [STALE_ANSWER] });
    expect(stale.answers[0].ttl).toBe(30);
    expect(await counter('coredns_cache_served_stale_total')).toBe(1);
    // An uncached name has nothing to fall back on: SERVFAIL, never NXDOMAIN.
    expect(await ask('api.example.com')).toMatchObject({ rcode: 2, ede: [NO_REACHABLE_AUTHORITY] });

    await up.listen();
    clock.advance(30_000);
    const fresh = await answered('www.example.com');
    expect(fresh).toMatchObject({ rcode: 0, ede: [] });
    expect(fresh.answers[0].ttl).toBe(60);
  });

  it('rechecks a failing name at most every 30 s and keeps the last positive answer', async () => {
    const up = await upstream();
    const { ask, clock } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`] });
    await ask('www.example.com');
    up.mode = 'servfail';
    clock.advance(60_000);
    expect(await ask('www.example.com')).toMatchObject({ ede: [STALE_ANSWER], addresses: ['192.0.2.1'] });
    expect(up.count('www.example.com')).toBe(2);
    clock.advance(29_999);
    expect(await ask('www.example.com')).toMatchObject({ ede: [STALE_ANSWER] });
    expect(up.count('www.example.com')).toBe(2);
    clock.advance(1);
    expect(await ask('www.example.com')).toMatchObject({ ede: [STALE_ANSWER], addresses: ['192.0.2.1'] });
    expect(up.count('www.example.com')).toBe(3);
  });

  it('answers stale when a refresh has not come back within the 1.8 s client timer; the late answer still refreshes the cache', async () => {
    const up = await upstream();
    const { ask, answered, clock } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`] });
    await ask('www.example.com');
    up.hold();
    clock.advance(60_000);
    let reply: ReadReply | null = null;
    const pending = answered('www.example.com').then((r) => (reply = r));
    await waitFor(() => up.count('www.example.com') === 2, 20_000, 'refresh query');
    clock.advance(1_799);
    await settle();
    expect(reply).toBeNull();
    clock.advance(1);
    const stale = await pending;
    expect(stale).toMatchObject({ ede: [STALE_ANSWER], addresses: ['192.0.2.1'] });
    expect(stale.answers[0].ttl).toBe(30);

    up.release();
    await settle();
    const fresh = await answered('www.example.com');
    expect(fresh).toMatchObject({ ede: [], addresses: ['192.0.2.1'] });
    expect(fresh.answers[0].ttl).toBe(60);
    expect(up.count('www.example.com')).toBe(2);
  });

  it('drops stale entries after serve_stale.max_age', async () => {
    const up = await upstream();
    const { ask, clock } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`], serve_stale: { max_age: 3600 } });
    await ask('www.example.com');
    up.mode = 'servfail';
    clock.advance(60_000 + 3_599_000);
    expect(await ask('www.example.com')).toMatchObject({ ede: [STALE_ANSWER] });
    clock.advance(1_000);
    expect(await ask('www.example.com')).toMatchObject({ rcode: 2, addresses: [] });
  });

  it('with serve_stale disabled, an expired name the upstream cannot answer is SERVFAIL', async () => {
    const up = await upstream();
    const { ask, clock } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`], serve_stale: { enabled: false } });
    await ask('www.example.com');
    up.mode = 'servfail';
    clock.advance(60_000);
    expect(await ask('www.example.com')).toMatchObject({ rcode: 2 });
  });
});

describe('upstreams', () => {
  it('retries over TCP when the UDP answer is truncated, and sizes the reply to the client', async () => {
    const up = await upstream();
    const { answered } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`] });
    const overTcp = await answered('big.example.com', {}, { ...LOCAL, transport: 'tcp' });
    expect(overTcp.addresses).toHaveLength(100);
    expect(overTcp.truncated).toBe(false);
    expect(up.count('big.example.com', 'udp')).toBe(1);
    expect(up.count('big.example.com', 'tcp')).toBe(1);
    const overUdp = await answered('big.example.com', { udpSize: null });
    expect(overUdp.truncated).toBe(true);
    expect(overUdp.addresses.length).toBeLessThan(100);
  });

  it('forwards to an IPv6 upstream, over UDP and over TCP', async () => {
    const up = await TestUpstream.start(ZONE, '::1');
    cleanups.push(() => up.stop());
    const { ask, answered } = await forwarder({ upstreams: [`[::1]:${up.port}`] });
    expect(await ask('www.example.com')).toMatchObject({ addresses: ['192.0.2.1'] });
    expect((await answered('big.example.com', {}, { ...LOCAL, transport: 'tcp' })).addresses).toHaveLength(100);
    expect(up.count('big.example.com', 'tcp')).toBe(1);
  });

  it('ignores a reply for another question (a forged answer cannot poison the cache)', async () => {
    const up = await upstream();
    const { ask, clock } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`] });
    up.mode = 'forged';
    const pending = ask('www.example.com');
    await waitFor(() => up.count('www.example.com') === 1, 20_000, 'query upstream');
    await settle();
    clock.advance(2_000);
    expect(await pending).toMatchObject({ rcode: 2, addresses: [] });
    up.mode = 'answer';
    expect(await ask('www.example.com')).toMatchObject({ rcode: 0, addresses: ['192.0.2.1'] });
    expect(up.count('www.example.com')).toBe(2);
  });

  it('moves to a fresh UDP source port every few hundred queries', async () => {
    const up = await upstream();
    const { ask } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`], cache: { enabled: false } });
    for (let i = 0; i < 600; i++) expect(await ask('www.example.com')).toMatchObject({ addresses: ['192.0.2.1'] });
    const ports = new Set(up.seen.map((q) => q.from));
    expect(ports.size).toBeGreaterThanOrEqual(3);
    expect(up.seen.filter((q) => q.from === up.seen[0].from)).toHaveLength(256);
  });

  it('fails over from a dead first upstream, marks it down, probes it with backoff and goes back when it answers', async () => {
    const dead = await upstream();
    const live = await upstream();
    await dead.stop();
    const { ask, clock, counter } = await forwarder({ upstreams: [`127.0.0.1:${dead.port}`, `127.0.0.1:${live.port}`] });
    const deadLabel = `127.0.0.1:${dead.port}`;
    expect(await ask('www.example.com')).toMatchObject({ addresses: ['192.0.2.1'] });
    expect(await ask('api.example.com')).toMatchObject({ addresses: ['192.0.2.2'] });
    expect(await counter('coredns_forward_requests_total', { to: deadLabel })).toBe(2);
    // Marked down after two failures: the next question goes straight to the live one.
    expect(await ask('nope.example.com')).toMatchObject({ rcode: 3 });
    expect(await counter('coredns_forward_requests_total', { to: deadLabel })).toBe(2);
    expect(live.count('nope.example.com')).toBe(1);

    clock.advance(500);
    await waitFor(async () => await counter('coredns_forward_healthcheck_failures_total', { to: deadLabel }) === 1, 20_000, 'failed probe');
    await dead.listen();
    clock.advance(999);
    await settle();
    expect(dead.count('')).toBe(0);
    clock.advance(1);
    await waitFor(() => dead.count('') === 1, 20_000, 'second probe');
    await settle();
    expect(await ask('other.example.com')).toMatchObject({ rcode: 3 });
    expect(dead.count('other.example.com')).toBe(1);
    expect(live.count('other.example.com')).toBe(0);
  });

  it('takes upstreams from resolv.conf, without itself, and follows changes to the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'forward-resolv-'));
    const file = join(dir, 'resolv.conf');
    writeFileSync(file, 'search example.com\nnameserver 127.0.0.1\nnameserver 192.0.2.53\n');
    const metrics = new Registry();
    const fwd = new Forwarder({
      config: configSchema.parse({ forward: { resolv_conf: file } }).forward,
      listen: [{ address: '127.0.0.1', port: 53 }],
      maxUdpSize: 1232,
      metrics,
      logger: createLogger('silent'),
    });
    await fwd.start();
    cleanups.push(() => fwd.stop());
    expect(fwd.upstreamLabels).toEqual(['192.0.2.53:53']);
    writeFileSync(file, 'nameserver 192.0.2.54\nnameserver ::1\nnameserver 2001:db8::1\n');
    await waitFor(() => fwd.upstreamLabels.join() === '192.0.2.54:53,[2001:db8::1]:53', 20_000, 'resolv.conf reload');
  });

  it('with no upstreams at all, it does not recurse (the handler refuses)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'forward-resolv-'));
    const file = join(dir, 'resolv.conf');
    writeFileSync(file, '# nothing\n');
    const { fwd, ask } = await forwarder({ resolv_conf: file });
    expect(fwd.recursionAvailable).toBe(false);
    expect(await ask('www.example.com')).toBeNull();
  });
});

describe('allow list', () => {
  it('refuses recursion to clients outside forward.allow', async () => {
    const up = await upstream();
    const { ask } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`], allow: ['127.0.0.1/32', '10.0.0.0/8'] });
    expect(await ask('www.example.com', {}, { ...LOCAL, address: '127.0.0.2' })).toBeNull();
    expect(await ask('www.example.com', {}, { ...LOCAL, address: '192.168.1.1' })).toBeNull();
    expect(await ask('www.example.com', {}, { ...LOCAL, address: '10.9.8.7' })).toMatchObject({ rcode: 0 });
    expect(await ask('www.example.com', {}, { ...LOCAL, address: '::ffff:127.0.0.1' })).toMatchObject({ rcode: 0 });
    expect(up.count('www.example.com')).toBe(1);
  });

  it('by default allows loopback but not other networks', async () => {
    const up = await upstream();
    const { ask } = await forwarder({ upstreams: [`127.0.0.1:${up.port}`] });
    expect(await ask('www.example.com', {}, { ...LOCAL, address: '127.0.0.2' })).toMatchObject({ rcode: 0 });
    expect(await ask('www.example.com', {}, { ...LOCAL, address: '::1' })).toMatchObject({ rcode: 0 });
    expect(await ask('www.example.com', {}, { ...LOCAL, address: '203.0.113.9' })).toBeNull();
  });
});
