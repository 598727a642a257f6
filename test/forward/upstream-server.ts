// A real DNS server on loopback (UDP and TCP on one port) for forwarder tests: answers A
// questions from a small zone, NXDOMAIN with an SOA otherwise, counts every query it
// sees, and can be stopped, restarted on the same port, told to SERVFAIL or to stay silent.
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import {
  decodeQuery, encodeResponse, HEADER_SIZE, Rcode, RRType, type DnsResult, type ResourceRecord,
} from '../../src/codec/index.ts';

export interface ZoneEntry {
  addresses: string[];
  ttl: number;
}

export interface SeenQuery {
  name: string;
  type: number;
  transport: 'udp' | 'tcp';
  /** The client's source port. */
  from: number;
}

/** `forged`: answers with the right ID but another question, as a blind spoofer would. */
export type UpstreamMode = 'answer' | 'servfail' | 'silent' | 'forged';

export class TestUpstream {
  readonly seen: SeenQuery[] = [];
  mode: UpstreamMode = 'answer';
  /** Replies kept back while holding (for questions that must overlap in flight). */
  private held: Array<() => void> | null = null;
  private udp: Socket | null = null;
  private tcp: Server | null = null;
  port = 0;

  constructor(readonly zone: Map<string, ZoneEntry> = new Map(), readonly host = '127.0.0.1') {}

  static async start(zone: Record<string, ZoneEntry> = {}, host = '127.0.0.1'): Promise<TestUpstream> {
    const upstream = new TestUpstream(new Map(Object.entries(zone)), host);
    await upstream.listen();
    return upstream;
  }

  /** Queries seen for `name` (any type except the health probe's root NS), optionally on one transport. */
  count(name: string, transport?: 'udp' | 'tcp'): number {
    return this.seen.filter((q) => q.name === name && (!transport || q.transport === transport)).length;
  }

  /** Listens on `port` (UDP and TCP); port 0 picks one free for both, picking again while the TCP side is taken. */
  async listen(port = this.port): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.listenOnce(port);
        return;
      } catch (err) {
        if (port !== 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt === 10) throw err;
      }
    }
  }

  private async listenOnce(port: number): Promise<void> {
    const udp = createSocket(this.host.includes(':') ? 'udp6' : 'udp4');
    udp.on('message', (packet, rinfo) => {
      const reply = this.answer(packet, 'udp', rinfo.port);
      if (reply) this.later(() => udp.send(reply, rinfo.port, rinfo.address));
    });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, this.host, () => resolve());
    });
    this.port = udp.address().port;
    const tcp = createServer((conn) => {
      conn.on('error', () => conn.destroy());
      const from = conn.remotePort ?? 0;
      let buffered = Buffer.alloc(0);
      conn.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          const reply = this.answer(buffered.subarray(2, 2 + buffered.readUInt16BE(0)), 'tcp', from);
          buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
          if (!reply) continue;
          const frame = Buffer.alloc(2);
          frame.writeUInt16BE(reply.length, 0);
          this.later(() => conn.write(Buffer.concat([frame, reply])));
        }
      });
    });
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', (err) => {
        udp.close();
        reject(err);
      });
      tcp.listen(this.port, this.host, () => resolve());
    });
    this.udp = udp;
    this.tcp = tcp;
  }

  /** Closes both sockets: queries to the port now get ICMP port unreachable / connection refused. */
  async stop(): Promise<void> {
    this.udp?.close();
    this.udp = null;
    const tcp = this.tcp;
    this.tcp = null;
    if (tcp) await new Promise<void>((resolve) => tcp.close(() => resolve()));
  }

  private later(send: () => void): void {
    if (this.held) this.held.push(send);
    else send();
  }

  /** Keeps replies back until release(). */
  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const send of held) send();
  }

  private answer(packet: Buffer, transport: 'udp' | 'tcp', from: number): Buffer | null {
    const decoded = decodeQuery(packet);
    if (!decoded.ok) return null;
    const { query } = decoded;
    const name = query.question.name.toLowerCase();
    this.seen.push({ name, type: query.question.type, transport, from });
    if (this.mode === 'silent') return null;
    if (this.mode === 'forged') {
      const forged = Buffer.from(packet);
      forged[HEADER_SIZE + 1] ^= 0x01;
      return this.answerFor(forged, transport);
    }
    return this.answerFor(packet, transport);
  }

  private answerFor(packet: Buffer, transport: 'udp' | 'tcp'): Buffer | null {
    const decoded = decodeQuery(packet);
    if (!decoded.ok) return null;
    const { query } = decoded;
    const name = query.question.name.toLowerCase();
    const entry = this.zone.get(name);
    const soa: ResourceRecord = {
      name: 'test', ttl: 60, type: RRType.SOA, mname: 'ns.test', rname: 'hostmaster.test',
      serial: 1, refresh: 60, retry: 60, expire: 60, minimum: 45,
    };
    let result: DnsResult;
    if (this.mode === 'servfail') result = { rcode: Rcode.SERVFAIL, authoritative: false, answers: [], authority: [], additional: [] };
    else if (!entry) result = { rcode: Rcode.NXDOMAIN, authoritative: true, answers: [], authority: [soa], additional: [] };
    else {
      const answers: ResourceRecord[] = query.question.type === RRType.A
        ? entry.addresses.map((address) => ({ name: query.question.name, ttl: entry.ttl, type: RRType.A, address }))
        : [];
      result = { rcode: Rcode.NOERROR, authoritative: true, answers, authority: answers.length ? [] : [soa], additional: [] };
    }
    return encodeResponse(packet, query, result, { transport, maxUdpSize: 1232, recursionAvailable: true });
  }
}
