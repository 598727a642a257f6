// One DNS message in, one out: decode, answer platform names from the topology, hand
// other names to the next handler in the chain (the forwarder) or refuse them, encode,
// count. Transport-agnostic; the server feeds it bytes from UDP and TCP.
import type { Registry } from '../admin/metrics.ts';
import type { TopologyIndex } from '../topology/topology-index.ts';
import { PlatformResolver } from './resolver.ts';
import {
  decodeQuery, encodeBareReply, encodeResponse, udpLimit, Rcode, rrTypeName,
  type DecodedQuery, type DnsResult, type EdnsOption,
} from './wire.ts';

export type Transport = 'udp' | 'tcp';

export interface Client {
  address: string;
  port: number;
  transport: Transport;
}

/** What a next handler (e.g. the forwarder) gives back: a result to encode, or finished bytes. */
export type NextAnswer = { result: DnsResult; ednsOptions?: EdnsOption[] } | { packet: Buffer };

/** A handler after the platform resolver: answers names outside the served domains. */
export interface NextHandler {
  readonly recursionAvailable: boolean;
  handle(query: DecodedQuery, packet: Buffer, client: Client): Promise<NextAnswer | null>;
}

export interface DnsHandlerOptions {
  ttl: number;
  negativeTtl: number;
  maxUdpSize: number;
  metrics: Registry;
  currentIndex: () => TopologyIndex | null;
}

const RCODE_NAMES = Object.fromEntries(Object.entries(Rcode).map(([k, v]) => [v, k]));
const TCP_MAX = 65535;

export class DnsHandler {
  private readonly resolver: PlatformResolver;
  private readonly requests;
  private readonly responses;
  private readonly duration;
  private readonly malformed;
  next: NextHandler | null = null;

  constructor(private readonly options: DnsHandlerOptions) {
    this.resolver = new PlatformResolver({ ttl: options.ttl, negativeTtl: options.negativeTtl });
    const { metrics } = options;
    this.requests = metrics.counter('coredns_dns_requests_total', 'DNS requests received.');
    this.responses = metrics.counter('coredns_dns_responses_total', 'DNS responses sent, by rcode.');
    this.duration = metrics.histogram('coredns_dns_request_duration_seconds', 'Time to answer a DNS request.');
    this.malformed = metrics.counter('presence_dns_malformed_packets_total', 'Packets that were not a usable DNS query.');
  }

  /** Returns the reply bytes, or null to drop the packet (not a query at all). */
  async handle(packet: Buffer, client: Client): Promise<Buffer | null> {
    const started = performance.now();
    const decoded = decodeQuery(packet);
    let reply: Buffer | null;
    if (!decoded.ok) {
      this.malformed.inc();
      reply = decoded.id === null ? null : encodeBareReply(decoded.id, decoded.opcode, decoded.recursionDesired, Rcode.FORMERR);
    } else {
      const { query } = decoded;
      this.requests.inc({ proto: client.transport, type: rrTypeName(query.question.type) });
      reply = query.opcode !== 0
        ? encodeBareReply(query.id, query.opcode, query.recursionDesired, Rcode.NOTIMP)
        : await this.answer(query, packet, client);
    }
    if (reply) {
      this.responses.inc({ rcode: RCODE_NAMES[reply[3] & 0x0f] ?? String(reply[3] & 0x0f) });
      this.duration.observe((performance.now() - started) / 1000, { proto: client.transport });
    }
    return reply;
  }

  private async answer(query: DecodedQuery, packet: Buffer, client: Client): Promise<Buffer> {
    const recursionAvailable = this.next?.recursionAvailable ?? false;
    const maxSize = client.transport === 'tcp' ? TCP_MAX : udpLimit(query, this.options.maxUdpSize);
    const encode = (result: DnsResult, ednsOptions?: EdnsOption[]) =>
      encodeResponse(packet, query, result, { maxSize, recursionAvailable, ednsUdpSize: this.options.maxUdpSize, ednsOptions });
    if (query.edns && query.edns.version > 0) {
      return encode({ rcode: Rcode.BADVERS, authoritative: false, answers: [], authority: [], additional: [] });
    }
    const index = this.options.currentIndex();
    const platform = index ? this.resolver.resolve(index, query.question) : null;
    if (platform) return encode(platform);
    const next = this.next ? await this.next.handle(query, packet, client) : null;
    if (next && 'packet' in next) return next.packet;
    if (next) return encode(next.result, next.ednsOptions);
    return encode({ rcode: Rcode.REFUSED, authoritative: false, answers: [], authority: [], additional: [] });
  }
}
