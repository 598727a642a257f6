// End-to-end: the daemon as the node-local resolver, forwarding to real DNS servers on
// loopback that the tests stop and start, queried with real dig.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addresses, dig } from '../helpers/dig.ts';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.ts';
import { topologyJson } from '../helpers/topology.ts';
import { TestUpstream } from '../forward/upstream-server.ts';

const TOPOLOGY = topologyJson([{ id: 'aaaa-1', ip: '10.0.0.1', index: 0, health: 'running' }]);
/** How long a test waits for what the daemon does by itself (a TTL counting down, a health probe): generous for a loaded machine. */
const WAIT_MS = 20_000;

describe('forwarding through one upstream', () => {
  let upstream: TestUpstream;
  let daemon: RunningDaemon;
  beforeAll(async () => {
    upstream = await TestUpstream.start({
      'www.example.com': { addresses: ['192.0.2.1'], ttl: 60 },
      'short.example.com': { addresses: ['192.0.2.9'], ttl: 1 },
      'big.example.com': { addresses: Array.from({ length: 100 }, (_, i) => `198.51.100.${i + 1}`), ttl: 60 },
    });
    daemon = await startDaemon({
      files: { 'topology.json': TOPOLOGY },
      config: {
        forward: {
          enabled: true,
          upstreams: [`127.0.0.1:${upstream.port}`],
          timeout: 1,
          allow: ['127.0.0.1/32'],
          serve_stale: { recheck: 1 },
        },
      },
    });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
    await upstream.stop();
  });

  it('resolves a name through the upstream, then from the cache with the TTL counting down', async () => {
    const first = await dig(daemon.dnsPort, 'WWW.example.com');
    expect(first.status).toBe('NOERROR');
    expect(first.flags).toEqual(expect.arrayContaining(['qr', 'rd', 'ra']));
    expect(first.flags).not.toContain('aa');
    expect(first.answer).toEqual([{ name: 'WWW.example.com.', ttl: 60, type: 'A', data: '192.0.2.1' }]);
    let later = first;
    await waitFor(async () => (later = await dig(daemon.dnsPort, 'www.example.com')).answer[0]?.ttl < 60, WAIT_MS, 'TTL below 60');
    expect(later.answer[0]).toMatchObject({ data: '192.0.2.1', ttl: expect.any(Number) });
    // Counted down from the cached answer, not the stale-serving TTL (30) nor a refetch.
    expect(later.answer[0].ttl).toBeGreaterThan(30);
    expect(upstream.count('www.example.com')).toBe(1);
  });

  it('refuses a client outside forward.allow for a foreign name, but still answers it platform names', async () => {
    const refused = await dig(daemon.dnsPort, 'www.example.com', 'A', ['-b', '127.0.0.2']);
    expect(refused.status).toBe('REFUSED');
    expect(refused.answer).toEqual([]);
    const platform = await dig(daemon.dnsPort, 'aaaa-1.web.default.cf.bosh.', 'A', ['-b', '127.0.0.2']);
    expect(addresses(platform)).toEqual(['10.0.0.1']);
  });

  it('sends PTR for addresses that are not instances upstream, but never names under the served domains', async () => {
    const ptr = await dig(daemon.dnsPort, '-x', '192.0.2.77');
    expect(ptr.status).toBe('NXDOMAIN');
    expect(ptr.authority[0]).toMatchObject({ name: 'test.', type: 'SOA' });
    expect(upstream.count('77.2.0.192.in-addr.arpa')).toBe(1);
    const instancePtr = await dig(daemon.dnsPort, '-x', '10.0.0.1');
    expect(instancePtr.answer[0]).toMatchObject({ type: 'PTR' });
    expect(upstream.count('1.0.0.10.in-addr.arpa')).toBe(0);
    expect((await dig(daemon.dnsPort, 'nope.web.default.cf.bosh.')).status).toBe('NXDOMAIN');
    expect(upstream.count('nope.web.default.cf.bosh')).toBe(0);
  });

  it('retries over TCP when the upstream truncates, and returns the full answer', async () => {
    const r = await dig(daemon.dnsPort, 'big.example.com');
    expect(r.raw).toContain('Truncated, retrying in TCP mode');
    expect(r.answer).toHaveLength(100);
    expect(upstream.count('big.example.com', 'udp')).toBe(1);
    expect(upstream.count('big.example.com', 'tcp')).toBe(1);
  });

  it('with the upstream stopped, answers an expired name stale (TTL 30, EDE 3); an uncached name gets SERVFAIL', async () => {
    expect(addresses(await dig(daemon.dnsPort, 'short.example.com'))).toEqual(['192.0.2.9']);
    await upstream.stop();
    let stale = await dig(daemon.dnsPort, 'short.example.com');
    await waitFor(async () => (stale = await dig(daemon.dnsPort, 'short.example.com')).opt.some((l) => l.startsWith('EDE')), WAIT_MS, 'stale answer');
    expect(stale.status).toBe('NOERROR');
    expect(stale.answer).toEqual([{ name: 'short.example.com.', ttl: 30, type: 'A', data: '192.0.2.9' }]);
    expect(stale.opt).toContain('EDE: 3 (Stale Answer)');

    const uncached = await dig(daemon.dnsPort, 'new.example.com');
    expect(uncached.status).toBe('SERVFAIL');
    expect(uncached.opt.some((l) => l.startsWith('EDE: 22 (No Reachable Authority)'))).toBe(true);

    const metrics = await (await daemon.admin('/metrics')).text();
    expect(metrics).toMatch(/^coredns_cache_served_stale_total [1-9]/m);
    expect(metrics).toMatch(/^coredns_cache_hits_total\{type="success"\} [1-9]/m);
    expect(metrics).toMatch(/^coredns_cache_misses_total [1-9]/m);
    expect(metrics).toContain(`coredns_forward_requests_total{to="127.0.0.1:${upstream.port}"}`);
  });

  it('a silent upstream: an uncached name gets SERVFAIL (the client is answered, not left to time out), never NXDOMAIN', async () => {
    await upstream.listen();
    upstream.mode = 'silent';
    // dig waits far longer than forward.timeout (1 s): only the daemon's own answer can end the wait.
    const r = await dig(daemon.dnsPort, 'slow.example.com', 'A', ['+time=20']);
    expect(r.status).toBe('SERVFAIL');
  });

  it('with the upstream back, answers fresh again', async () => {
    upstream.mode = 'answer';
    let fresh = await dig(daemon.dnsPort, 'short.example.com');
    await waitFor(async () => !(fresh = await dig(daemon.dnsPort, 'short.example.com')).opt.some((l) => l.startsWith('EDE')), WAIT_MS, 'fresh answer');
    expect(fresh.answer).toEqual([{ name: 'short.example.com.', ttl: 1, type: 'A', data: '192.0.2.9' }]);
    expect(addresses(await dig(daemon.dnsPort, 'www.example.com'))).toEqual(['192.0.2.1']);
  });
});

describe('forwarding to two upstreams', () => {
  let first: TestUpstream;
  let second: TestUpstream;
  let daemon: RunningDaemon;
  const zone = {
    'a.example.com': { addresses: ['192.0.2.10'], ttl: 60 },
    'b.example.com': { addresses: ['192.0.2.11'], ttl: 60 },
    'c.example.com': { addresses: ['192.0.2.12'], ttl: 60 },
    'same.example.com': { addresses: ['192.0.2.13'], ttl: 60 },
  };
  beforeAll(async () => {
    first = await TestUpstream.start(zone);
    second = await TestUpstream.start(zone);
    daemon = await startDaemon({
      files: { 'topology.json': TOPOLOGY },
      config: {
        forward: {
          enabled: true,
          upstreams: [`127.0.0.1:${first.port}`, `127.0.0.1:${second.port}`],
          timeout: 1,
          health_check: 0.2,
          // No cache: only in-flight sharing can explain a single upstream query.
          cache: { enabled: false },
        },
      },
    });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
    await Promise.all([first.stop(), second.stop()]);
  });

  it('fails over from a dead first upstream to the second, and back when the first recovers', async () => {
    await first.stop();
    expect(addresses(await dig(daemon.dnsPort, 'a.example.com'))).toEqual(['192.0.2.10']);
    expect(addresses(await dig(daemon.dnsPort, 'b.example.com'))).toEqual(['192.0.2.11']);
    expect(second.count('a.example.com') + second.count('b.example.com')).toBe(2);
    await first.listen();
    await waitFor(() => first.count('') > 0, WAIT_MS, 'health probe of the first upstream');
    await waitFor(async () => addresses(await dig(daemon.dnsPort, 'c.example.com')).length === 1 && first.count('c.example.com') > 0, WAIT_MS, 'first upstream used again');
    expect(second.count('c.example.com')).toBe(0);
  });

  it('shares one upstream query among identical concurrent questions', async () => {
    const received = async () => {
      const text = await (await daemon.admin('/metrics')).text();
      return [...text.matchAll(/^coredns_dns_requests_total\S* (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    };
    const before = await received();
    first.hold();
    second.hold();
    const pending = Promise.all(Array.from({ length: 10 }, () => dig(daemon.dnsPort, 'same.example.com', 'A', ['+time=25'])));
    // Every question has reached the daemon before the upstream may answer any.
    await waitFor(async () => (await received()) >= before + 10, WAIT_MS, 'ten questions at the daemon');
    first.release();
    second.release();
    const replies = await pending;
    expect(replies.map(addresses)).toEqual(Array.from({ length: 10 }, () => ['192.0.2.13']));
    expect(first.count('same.example.com') + second.count('same.example.com')).toBe(1);
  });
});

describe('a test daemon never forwards off this machine', () => {
  it.each([
    ['forwarding on without upstreams (the machine\'s /etc/resolv.conf)', { enabled: true }, 'forward.upstreams is empty, so it would forward to the servers in /etc/resolv.conf'],
    ['an upstream that is not on loopback', { enabled: true, upstreams: ['127.0.0.1:5399', '192.0.2.53'] }, 'upstream(s) 192.0.2.53 are not on loopback'],
    ['a resolv.conf of its own that names a remote server', { enabled: true, resolv_conf: 'resolv.conf' }, 'upstream(s) 192.0.2.53:53 are not on loopback'],
  ])('refuses to start one with %s', async (_what, forward, reason) => {
    await expect(startDaemon({ config: { forward }, files: { 'topology.json': TOPOLOGY, 'resolv.conf': 'nameserver 192.0.2.53\n' } }))
      .rejects.toThrow(`a test daemon must forward only to upstreams on loopback that the test started: ${reason}`);
  });
});
