// The handler chain without sockets: the self check before any topology, a forwarded
// answer served at once (no promise) from the forwarder's cache (a real upstream on
// loopback), and query-type metric labels that stay bounded under odd query types.
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from '../../src/admin/metrics.ts';
import { configSchema } from '../../src/config/schema.ts';
import { DnsHandler, type Client } from '../../src/dns/handler.ts';
import { Rcode, RRType } from '../../src/codec/index.ts';
import { Forwarder } from '../../src/forward/index.ts';
import { createLogger } from '../../src/log.ts';
import { emptyView, type TopologyLookup } from '../../src/image/index.ts';
import { required } from '../helpers/required.ts';
import { makeQuery, readReply } from '../forward/packets.ts';
import { TestUpstream } from '../forward/upstream-server.ts';

const LOCAL: Client = { address: '127.0.0.1', port: 40000, transport: 'udp' };
const OUTSIDER: Client = { address: '127.0.0.2', port: 40000, transport: 'udp' };

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const LOADED = emptyView({ domains: ['bosh'] });

function handler(metrics = new Registry(), index: TopologyLookup | null = null): DnsHandler {
  return new DnsHandler({ ttl: 5, negativeTtl: 5, maxUdpSize: 1232, metrics, currentIndex: () => index });
}

describe('DnsHandler', () => {
  it('answers upcheck.presence-dns before any topology is loaded', async () => {
    const reply = await handler().answer(makeQuery('upcheck.presence-dns').packet, LOCAL);
    const read = readReply(required(reply, 'a reply'));
    expect(read.rcode).toBe(Rcode.NOERROR);
    expect(read.addresses).toEqual(['127.0.0.1']);
  });

  it('serves a fresh forwarded answer synchronously, only to allowed clients', async () => {
    const upstream = await TestUpstream.start({ 'www.example.com': { addresses: ['192.0.2.7'], ttl: 60 } });
    cleanups.push(() => upstream.stop());
    const forwarder = new Forwarder({
      config: configSchema.parse({ forward: { upstreams: [`127.0.0.1:${upstream.port}`], allow: ['127.0.0.1/32'] } }).forward,
      listen: [{ address: '127.0.0.1', port: 5353 }],
      maxUdpSize: 1232,
      metrics: new Registry(),
      logger: createLogger('silent'),
    });
    await forwarder.start();
    cleanups.push(() => forwarder.stop());
    const h = handler(new Registry(), LOADED);
    h.next = forwarder;
    const { packet } = makeQuery('www.example.com', { id: 0x4242 });

    const asked = h.answer(packet, LOCAL);
    expect(asked).toBeInstanceOf(Promise);
    const first = readReply(required(await asked, 'a forwarded reply'));
    expect(first.addresses).toEqual(['192.0.2.7']);

    const cached = h.answer(makeQuery('WWW.example.com', { id: 0x0707 }).packet, LOCAL);
    expect(Buffer.isBuffer(cached)).toBe(true);
    const read = readReply(cached as Buffer);
    expect(read.id).toBe(0x0707);
    expect(read.question).toBe('WWW.example.com');
    expect(read.addresses).toEqual(['192.0.2.7']);
    expect(read.recursionAvailable).toBe(true);
    expect(upstream.count('www.example.com')).toBe(1);

    const refused = h.answer(packet, OUTSIDER);
    expect(refused).toBeInstanceOf(Promise);
    expect(readReply(required(await refused, 'a refusal')).rcode).toBe(Rcode.REFUSED);
  });

  it('counts queries of unknown types under type="other"', async () => {
    const metrics = new Registry();
    const h = handler(metrics);
    for (const type of [4000, 4001, 65000]) await h.answer(makeQuery('upcheck.presence-dns', { type }).packet, LOCAL);
    await h.answer(makeQuery('upcheck.presence-dns', { type: RRType.AAAA }).packet, LOCAL);
    const text = await metrics.render();
    expect(text).toContain('coredns_dns_requests_total{proto="udp",type="other"} 3');
    expect(text).toContain('coredns_dns_requests_total{proto="udp",type="AAAA"} 1');
    expect(text).not.toMatch(/type="TYPE\d+"/);
  });
});
