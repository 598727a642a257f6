// dns.workers: two threads answer UDP on the same port (SO_REUSEPORT; the kernel picks a
// socket per client address and port), from one topology image. A stream of queries from
// many client sockets is answered in full by both threads, from answers either thread
// encoded (the answer cache is shared); a new topology file reaches both; a forwarded name is answered through the main thread's forwarder; a killed worker
// is restarted while the main thread keeps answering.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UdpClient } from '../dns/client.ts';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.ts';
import { topologyJson } from '../helpers/topology.ts';
import { TestUpstream } from '../forward/upstream-server.ts';
import { metric } from '../presence/daemons.ts';

const topology = (version: number) => topologyJson(
  Array.from({ length: 20 }, (_, n) => ({ id: `w${n}`, ip: n === 0 ? `10.30.0.${version}` : `10.31.0.${n}`, index: n })), {}, version);

const answersEncoded = (daemon: RunningDaemon) => metric(daemon, 'presence_dns_answer_cache_misses_total');

async function perThread(daemon: RunningDaemon): Promise<Map<string, number>> {
  const text = await (await daemon.admin('/metrics')).text();
  return new Map([...text.matchAll(/^presence_dns_udp_queries_total\{thread="(\d+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
}

describe('dns.workers: 2', () => {
  let daemon: RunningDaemon;
  let upstream: TestUpstream;
  beforeAll(async () => {
    upstream = await TestUpstream.start({ 'www.example.com': { addresses: ['192.0.2.7'], ttl: 60 } });
    daemon = await startDaemon({
      files: { 'topology.json': topology(1) },
      config: { dns: { workers: 2 }, forward: { enabled: true, upstreams: [`127.0.0.1:${upstream.port}`] }, log: { level: 'info' } },
    });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
    await upstream.stop();
  });

  const clients = () => Array.from({ length: 48 }, () => new UdpClient(daemon.dnsPort));

  it('answers every query of a stream from many sockets, on both threads, from one shared answer cache', async () => {
    expect(daemon.logs.some((l) => l.includes('"dnsThreads":2'))).toBe(true);
    // Each name asked once, from one socket: one thread encodes its answer.
    const first = new UdpClient(daemon.dnsPort);
    for (let n = 1; n < 20; n++) expect((await first.ask(`w${n}.web.default.cf.bosh`))?.addresses).toEqual([`10.31.0.${n}`]);
    first.close();
    const encoded = await answersEncoded(daemon);
    const before = await perThread(daemon);
    const sockets = clients();
    const failures: string[] = [];
    for (let round = 0; round < 20; round++) {
      await Promise.all(sockets.map(async (c, k) => {
        const n = 1 + ((round + k) % 19);
        const reply = await c.ask(`w${n}.web.default.cf.bosh`);
        if (reply?.addresses.join() !== `10.31.0.${n}`) failures.push(`w${n}: ${reply ? reply.addresses.join() : 'no answer'}`);
      }));
    }
    sockets.forEach((c) => c.close());
    expect(failures).toEqual([]);
    const after = await perThread(daemon);
    const answered = [...after].map(([thread, n]) => [thread, n - (before.get(thread) ?? 0)] as const).filter(([, n]) => n > 0);
    // The main thread (0) and one worker thread.
    expect(answered.map(([thread]) => thread).sort()).toHaveLength(2);
    expect(answered.reduce((sum, [, n]) => sum + n, 0)).toBe(48 * 20);
    // Both threads answered every name from the answers encoded before the stream.
    expect(await answersEncoded(daemon)).toBe(encoded);
  });

  it('puts a new topology in service on both threads', async () => {
    const file = join(daemon.dir, 'topology.json');
    writeFileSync(`${file}.tmp`, topology(2));
    renameSync(`${file}.tmp`, file);
    const sockets = clients();
    try {
      await waitFor(async () => {
        const replies = await Promise.all(sockets.map((c) => c.ask('w0.web.default.cf.bosh')));
        return replies.every((r) => r?.addresses.join() === '10.30.0.2');
      }, 10_000, 'every socket to see the new address');
    } finally {
      sockets.forEach((c) => c.close());
    }
  });

  it('answers a forwarded name from either thread, through the main thread\'s forwarder', async () => {
    const sockets = clients();
    const replies = await Promise.all(sockets.map((c) => c.ask('www.example.com')));
    sockets.forEach((c) => c.close());
    expect(replies.every((r) => r?.addresses.join() === '192.0.2.7')).toBe(true);
    // One cache in the main thread: the upstream was asked once.
    expect(upstream.count('www.example.com')).toBe(1);
  });

  it('counts the workers\' queries in the one /metrics', async () => {
    const text = await (await daemon.admin('/metrics')).text();
    const total = Number(/^coredns_dns_requests_total\{proto="udp",type="A"\} (\d+)$/m.exec(text)?.[1]);
    const perThreadTotal = [...(await perThread(daemon)).values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(perThreadTotal);
    expect(text).toMatch(/^presence_dns_dns_workers 1$/m);
  });
});
