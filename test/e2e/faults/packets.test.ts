// Fuzz: 10,000 random and mutated packets (1,000,000 with FAULTS_LONG=1; seeded, so a
// failure replays) sent at the running daemon over loopback UDP under a steady load of
// good queries, and garbage over a few TCP connections. Afterwards the process is alive,
// never hit an internal error, answered every good query (0 failed, 0 records lost),
// grew its RSS by 20 MB at most, and still answers dig correctly.
// Fuzzed names outside the platform's domains are forwarded — to an upstream this test
// runs on loopback, and nowhere else.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildQuery, UdpClient } from '../../dns/client.ts';
import { addresses, dig } from '../../helpers/dig.ts';
import { startDaemon, type RunningDaemon } from '../../helpers/daemon.ts';
import { topologyJson } from '../../helpers/topology.ts';
import { TestUpstream } from '../../forward/upstream-server.ts';
import { daemonRss, expectNothingLost, reportSeen, size, Watch } from './report.ts';

const PACKETS = size(10_000, 1_000_000);
/** RSS growth allowed over the whole fuzz (memory stays flat). */
const MAX_RSS_GROWTH = 20 * 2 ** 20;
const SEED = 0x5eed;

/** mulberry32: a tiny seeded PRNG, so the same packets are sent on every run. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEEDS = [
  buildQuery('q-s0.web.default.cf.bosh'),
  buildQuery('_http._tcp.web.default.cf.bosh', { type: 33, edns: { udpSize: 1232 } }),
  buildQuery('1.0.0.10.in-addr.arpa', { type: 12 }),
  buildQuery('q-s0.q-g1.bosh', { type: 28, edns: { udpSize: 4096, dnssecOk: true } }),
  buildQuery('web.service.internal', { type: 255 }),
  buildQuery('example.com'),
];

/** The fuzz packets, made as they are sent (a million would not fit in memory at once). */
function* packets(count: number): Generator<Buffer> {
  const rand = prng(SEED);
  const int = (n: number) => Math.floor(rand() * n);
  for (let n = 0; n < count; n++) {
    const kind = n % 4;
    if (kind === 0) {
      yield Buffer.from(Array.from({ length: int(600) }, () => int(256)));
      continue;
    }
    const p = Buffer.from(SEEDS[int(SEEDS.length)]);
    // Keep it a query (QR=0) half the time, so mutations reach the decoder's depths.
    if (kind === 1) {
      for (let flips = 1 + int(4); flips > 0; flips--) p[12 + int(p.length - 12)] = int(256);
      p[2] &= 0x7f;
      yield p;
    } else if (kind === 2) {
      p.writeUInt16BE(int(4), 4);
      p.writeUInt16BE(int(0x10000), 6 + 2 * int(3));
      yield int(2) ? p.subarray(0, int(p.length + 1)) : Buffer.concat([p, Buffer.from([0xc0, int(256), int(256), int(256)])]);
    } else {
      for (let flips = 1 + int(8); flips > 0; flips--) p[int(p.length)] = int(256);
      yield p;
    }
  }
}

function tcpGarbage(port: number, frames: Buffer[]): Promise<void> {
  return new Promise((resolve) => {
    const conn = connect(port, '127.0.0.1', () => {
      for (const f of frames) conn.write(f);
      setTimeout(() => conn.destroy(), 100);
    });
    conn.on('data', () => undefined);
    conn.on('error', () => undefined);
    conn.on('close', () => resolve());
  });
}

const framed = (b: Buffer) => Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);

describe('fuzzing the running daemon', () => {
  let daemon: RunningDaemon;
  let upstream: TestUpstream;
  beforeAll(async () => {
    upstream = await TestUpstream.start({ 'example.com': { addresses: ['192.0.2.1'], ttl: 60 } });
    daemon = await startDaemon({
      files: { 'topology.json': topologyJson([{ id: 'web-0', ip: '10.0.0.1', index: 0, ports: { http: 8080 } }], { aliases: { 'web.service.internal': ['*.web.default.cf.bosh'] } }) },
      config: { log: { level: 'info' }, forward: { enabled: true, upstreams: [`127.0.0.1:${upstream.port}`] } },
    });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
    await upstream.stop();
  });

  it(`survives ${PACKETS} random and mutated packets and still answers`, async () => {
    const fuzzer = new UdpClient(daemon.dnsPort);
    const prober = new UdpClient(daemon.dnsPort);
    const watch = new Watch({ daemons: [daemon], expected: new Map([['q-s0.web.default.cf.bosh', ['10.0.0.1']], ['web.service.internal', ['10.0.0.1']]]), load: { intervalMs: 2 } });
    const rssBefore = daemonRss(daemon);
    let batch: Buffer[] = [];
    let sent = 0;
    try {
      for (const packet of packets(PACKETS)) {
        batch.push(packet);
        if (batch.length < 100) continue;
        await Promise.all(batch.map((p) => fuzzer.sendRaw(p)));
        sent += batch.length;
        batch = [];
        // A good query after each batch both paces the fuzz (so no packet is lost to a full
        // socket buffer) and proves the daemon still answers between batches.
        const probe = await prober.ask('q-s0.web.default.cf.bosh', 1, 2000);
        expect(probe?.addresses, `answer after packet ${sent}`).toEqual(['10.0.0.1']);
      }
    } finally {
      fuzzer.close();
      prober.close();
    }
    const seen = await watch.stop();
    const rssGrowth = daemonRss(daemon) - rssBefore;
    reportSeen(`${PACKETS.toLocaleString('en')} random/mutated UDP packets`, seen, daemonRss(daemon), `RSS growth ${(rssGrowth / 2 ** 20).toFixed(1)} MB`);
    expectNothingLost(seen);
    expect(rssGrowth).toBeLessThanOrEqual(MAX_RSS_GROWTH);

    const rand = prng(SEED + 1);
    await Promise.all([
      tcpGarbage(daemon.dnsPort, [...packets(50)].map(framed)),
      tcpGarbage(daemon.dnsPort, [Buffer.from([0xff, 0xff, 1, 2, 3])]),
      tcpGarbage(daemon.dnsPort, [Buffer.from(Array.from({ length: 4000 }, () => Math.floor(rand() * 256)))]),
      tcpGarbage(daemon.dnsPort, [framed(Buffer.alloc(0)), framed(Buffer.alloc(3)), framed(SEEDS[0].subarray(0, 20))]),
    ]);

    expect(daemon.process.exitCode).toBeNull();
    expect(daemon.logs.filter((l) => l.includes('"level":50'))).toEqual([]);
    expect(addresses(await dig(daemon.dnsPort, 'q-s0.web.default.cf.bosh.'))).toEqual(['10.0.0.1']);
    expect(addresses(await dig(daemon.dnsPort, 'q-s0.web.default.cf.bosh.', 'A', ['+tcp']))).toEqual(['10.0.0.1']);
    const srv = await dig(daemon.dnsPort, '_http._tcp.web.default.cf.bosh.', 'SRV');
    expect(srv.answer.map((a) => a.data)).toEqual(['0 1 8080 web-0.web.default.cf.bosh.']);
    expect((await daemon.admin('/health')).status).toBe(200);
  }, size(30_000, 1_800_000));

  it('counted it all in /metrics under the CoreDNS names', async () => {
    const text = await (await daemon.admin('/metrics')).text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    expect(value(/^coredns_dns_requests_total\{proto="udp",type="A"\} (\d+)$/m)).toBeGreaterThan(0);
    expect(value(/^coredns_dns_responses_total\{rcode="NOERROR"\} (\d+)$/m)).toBeGreaterThan(0);
    expect(value(/^coredns_dns_responses_total\{rcode="FORMERR"\} (\d+)$/m)).toBeGreaterThan(100);
    expect(value(/^coredns_dns_request_duration_seconds_count\{proto="udp"\} (\d+)$/m)).toBeGreaterThan(100);
    // Label order within braces is the exporter's choice (ours puts le first).
    expect(text).toMatch(/^coredns_dns_request_duration_seconds_bucket\{(?=[^}]*proto="udp")(?=[^}]*le="\+Inf")[^}]*\} \d+$/m);
    const malformed = value(/^presence_dns_malformed_packets_total (\d+)$/m);
    const decoded = [...text.matchAll(/^coredns_dns_requests_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
    expect(malformed).toBeGreaterThan(1000);
    // Every packet sent reached the decoder: the fuzz really exercised it.
    expect(malformed + decoded).toBeGreaterThanOrEqual(PACKETS);
    expect(value(/^presence_dns_topology_records (\d+)$/m)).toBe(1);
  });

  it('forwarded the fuzzed foreign names to the loopback upstream only', async () => {
    const text = await (await daemon.admin('/metrics')).text();
    const targets = [...text.matchAll(/^coredns_forward_requests_total\{to="([^"]+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])] as const);
    expect(targets.map(([to]) => to)).toEqual([`127.0.0.1:${upstream.port}`]);
    expect(targets[0][1]).toBeGreaterThan(0);
    expect(upstream.seen.length).toBeGreaterThan(0);
  });
});
