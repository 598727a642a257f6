// The DNS server as the per-packet boundary and the keeper of TCP's bounds, on real
// sockets on loopback: a query whose answer cannot be encoded gets SERVFAIL (UDP, TCP,
// fast and general path), is counted and logged at most once a second, and the server
// keeps answering; TCP connections are capped, idle and slow ones are closed on the
// injected clock, and a client that does not read its replies is not read either.
import { connect, type Socket } from 'node:net';
import { Packet } from 'dns2';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from '../../src/admin/metrics.ts';
import { DnsHandler } from '../../src/dns/handler.ts';
import { DnsServer } from '../../src/dns/server.ts';
import { Rcode, RRType } from '../../src/codec/index.ts';
import { compileImage } from '../../src/image/builder.ts';
import { TopologyImage } from '../../src/image/image.ts';
import type { Instance } from '../../src/image/instance.ts';
import { TopologyView } from '../../src/image/view.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { waitFor } from '../helpers/daemon.ts';
import { buildQuery, UdpClient } from './client.ts';

const GOOD: Instance = {
  id: 'web-0', numId: 1, group: 'web', groupIds: [1], network: 'default', networkId: 1, deployment: 'cf', az: null, azId: null,
  index: 0, ip: '10.0.0.1', family: 4, domain: 'bosh', agentId: null, cellId: null, health: null, ports: { http: 8080 },
};
// A name no encoder can write, as if it had slipped past the topology reader: PTR and SRV
// answers name the instance, so answering them throws in the encoder.
const UNWRITABLE: Instance = { ...GOOD, id: 'x'.repeat(70), group: 'bad', index: null, ip: '10.0.0.66' };
/** A group whose SRV answer is about 3 KB. */
const BIG = Array.from({ length: 60 }, (_, n): Instance => ({ ...GOOD, id: `big-${n}`, group: 'big', index: n, ip: `10.1.0.${n + 1}` }));

function view(instances: Instance[]): TopologyView {
  return new TopologyView(new TopologyImage(compileImage({ version: 1, instances, aliases: new Map(), ptrRecords: null, generatedAt: null, source: null, cluster: null })));
}

interface Harness {
  server: DnsServer;
  port: number;
  clock: ManualClock;
  metrics: Registry;
  logs: Array<{ level: number; msg: string; sinceLastLog?: number; err?: string }>;
}

const servers: DnsServer[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => s.stop(100)));
});

async function serve(options: { answerCacheBytes?: number; maxTcpConnections?: number; tcpIdleMs?: number; maxTcpInFlight?: number } = {}): Promise<Harness> {
  const metrics = new Registry();
  const logs: Harness['logs'] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line) as Harness['logs'][number]) });
  const topology = view([GOOD, UNWRITABLE, ...BIG]);
  const handler = new DnsHandler({ ttl: 5, negativeTtl: 5, maxUdpSize: 1232, metrics, currentIndex: () => topology, answerCacheBytes: options.answerCacheBytes });
  const clock = new ManualClock();
  const server = new DnsServer({ listen: [{ address: '127.0.0.1', port: 0 }], handler, logger, metrics, clock, ...options });
  await server.start();
  servers.push(server);
  return { server, port: server.bound[0].port, clock, metrics, logs };
}

const failures = (h: Harness) => h.metrics.value('presence_dns_query_failures_total');

/** A TCP client speaking RFC 1035 framing; `replies` collects the decoded answers. */
async function tcpClient(port: number): Promise<{ socket: Socket; replies: Packet[]; ask(packet: Buffer): void; closed: Promise<void> }> {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const replies: Packet[] = [];
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
      replies.push(Packet.parse(pending.subarray(2, 2 + pending.readUInt16BE(0))));
      pending = pending.subarray(2 + pending.readUInt16BE(0));
    }
  });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const frame = (p: Buffer) => Buffer.concat([Buffer.from([p.length >> 8, p.length & 0xff]), p]);
  return { socket, replies, ask: (packet) => socket.write(frame(packet)), closed };
}

describe('the per-packet boundary', () => {
  it.each([
    ['the fast path', undefined],
    ['the general path', 0],
  ])('answers SERVFAIL over UDP when answering throws (%s), and keeps serving', async (_path, answerCacheBytes) => {
    const h = await serve({ answerCacheBytes });
    const client = new UdpClient(h.port);
    try {
      const ptr = await client.ask('66.0.0.10.in-addr.arpa', RRType.PTR);
      expect(ptr?.rcode).toBe(Rcode.SERVFAIL);
      expect(ptr?.packet.questions[0]).toMatchObject({ name: '66.0.0.10.in-addr.arpa', type: RRType.PTR });
      const srv = await client.ask('_http._tcp.bad.default.cf.bosh', RRType.SRV);
      expect(srv?.rcode).toBe(Rcode.SERVFAIL);
      expect((await client.ask('web-0.web.default.cf.bosh'))?.addresses).toEqual(['10.0.0.1']);
      expect((await client.ask('1.0.0.10.in-addr.arpa', RRType.PTR))?.rcode).toBe(Rcode.NOERROR);
      expect(await failures(h)).toBe(2);
    } finally {
      client.close();
    }
  });

  it('answers SERVFAIL over TCP too, on the same connection, which stays open', async () => {
    const h = await serve();
    const tcp = await tcpClient(h.port);
    tcp.ask(buildQuery('66.0.0.10.in-addr.arpa', { id: 1, type: RRType.PTR }));
    tcp.ask(buildQuery('web-0.web.default.cf.bosh', { id: 2 }));
    await waitFor(() => tcp.replies.length === 2, 20_000, 'both replies');
    expect(tcp.replies.map((r) => [r.header.id, r.header.rcode])).toEqual([[1, Rcode.SERVFAIL], [2, Rcode.NOERROR]]);
    expect(tcp.socket.destroyed).toBe(false);
    expect(await failures(h)).toBe(1);
  });

  it('logs the first failure with its error, then at most once a second with the count in between', async () => {
    const h = await serve();
    const client = new UdpClient(h.port);
    try {
      const ask = () => client.ask('66.0.0.10.in-addr.arpa', RRType.PTR);
      await ask();
      for (let n = 0; n < 20; n++) await ask();
      const logged = () => h.logs.filter((l) => l.level === 50 && l.msg.startsWith('answering a query failed'));
      expect(logged()).toHaveLength(1);
      expect(logged()[0].err).toContain('cannot encode the name');
      h.clock.advance(1000);
      await ask();
      expect(logged()).toHaveLength(2);
      expect(logged()[1].sinceLastLog).toBe(20);
      expect(await failures(h)).toBe(22);
    } finally {
      client.close();
    }
  });
});

describe('TCP bounds', () => {
  it('closes a connection that completes no query within the idle timeout, however it trickles bytes', async () => {
    const h = await serve({ tcpIdleMs: 10_000 });
    const slow = await tcpClient(h.port);
    const busy = await tcpClient(h.port);
    const query = Buffer.concat([Buffer.from([0, 40]), buildQuery('web-0.web.default.cf.bosh')]);
    for (let second = 0; second < 9; second++) {
      // One byte of a query now and then: a slow-loris client never completes one.
      slow.socket.write(query.subarray(second, second + 1));
      busy.ask(buildQuery('web-0.web.default.cf.bosh', { id: second }));
      await waitFor(() => busy.replies.length === second + 1, 20_000, 'the busy client\'s answer');
      h.clock.advance(1500);
    }
    await slow.closed;
    expect(busy.socket.destroyed).toBe(false);
    expect(h.server.tcpConnections).toBe(1);
  });

  it('closes a connection that never sends anything (half-open, silent) after the idle timeout', async () => {
    const h = await serve({ tcpIdleMs: 10_000 });
    const silent = await tcpClient(h.port);
    await waitFor(() => h.server.tcpConnections === 1, 20_000, 'the connection to be accepted');
    h.clock.advance(9_999);
    expect(silent.socket.destroyed).toBe(false);
    h.clock.advance(1);
    await silent.closed;
    expect(h.server.tcpConnections).toBe(0);
  });

  it('caps connections: one more closes the least recently active, and the new one is answered', async () => {
    const h = await serve({ maxTcpConnections: 3 });
    const first = await tcpClient(h.port);
    const second = await tcpClient(h.port);
    const third = await tcpClient(h.port);
    await waitFor(() => h.server.tcpConnections === 3, 20_000, 'three connections');
    // The first one is used: now the second is the least recently active.
    first.ask(buildQuery('web-0.web.default.cf.bosh'));
    await waitFor(() => first.replies.length === 1, 20_000, 'an answer');
    const fourth = await tcpClient(h.port);
    await second.closed;
    fourth.ask(buildQuery('web-0.web.default.cf.bosh'));
    await waitFor(() => fourth.replies.length === 1, 20_000, 'the new connection\'s answer');
    expect([first, third, fourth].map((c) => c.socket.destroyed)).toEqual([false, false, false]);
    expect(h.server.tcpConnections).toBe(3);
    expect(await h.metrics.value('presence_dns_tcp_evictions_total')).toBe(1);
  });

  it('stops reading from a client that does not read its replies, while UDP is answered', async () => {
    const h = await serve({ tcpIdleMs: 10_000 });
    const hog = await tcpClient(h.port);
    hog.socket.pause();
    // 20,000 pipelined queries whose answers it never reads (about 60 MB of replies).
    const query = buildQuery('_http._tcp.big.default.cf.bosh', { type: RRType.SRV });
    const frame = Buffer.concat([Buffer.from([0, query.length]), query]);
    hog.socket.write(Buffer.concat(Array.from({ length: 20_000 }, () => frame)));
    const requests = () => h.metrics.value('coredns_dns_requests_total', { proto: 'tcp', type: 'SRV' });
    await waitFor(async () => (await requests()) > 0, 20_000, 'the first queries to be answered');
    const client = new UdpClient(h.port);
    try {
      for (let n = 0; n < 20; n++) expect((await client.ask('web-0.web.default.cf.bosh'))?.addresses).toEqual(['10.0.0.1']);
    } finally {
      client.close();
    }
    const answered = await requests();
    // Only what the socket buffers hold was answered, and it stays so.
    expect(answered).toBeLessThan(20_000);
    await new Promise((r) => setTimeout(r, 200));
    expect(await requests()).toBe(answered);
    h.clock.advance(10_000);
    await waitFor(() => h.server.tcpConnections === 0, 20_000, 'the hog to be closed');
  });
});
