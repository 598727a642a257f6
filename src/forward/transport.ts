// Asking one upstream one question: UDP, retried over TCP when the UDP answer is
// truncated. The only sockets of the forwarder. UDP goes over a connected socket per
// upstream shared by the questions in flight (matched by ID and question), replaced
// after a few hundred queries so the source port keeps changing (spoofing needs both
// port and ID); a connected socket also turns ICMP "port unreachable" into a fast error.
import { createSocket, type Socket, type SocketOptions } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { connect, isIPv6 } from 'node:net';
import type { Clock } from '../clock.ts';
import { parseUpstreamResponse, type StoredMessage } from './message.ts';
import type { UpstreamAddress } from './upstreams.ts';

export type Exchange =
  | { ok: true; stored: StoredMessage; transport: 'udp' | 'tcp' }
  | { ok: false; reason: string };

type UdpResult = Exchange | { ok: true; truncated: true };

/** Queries one UDP socket carries before a fresh one (new source port) takes over. */
const QUERIES_PER_SOCKET = 256;

/**
 * Upstreams are IP literals, so no name lookup is needed: without this, every bind and
 * connect of a UDP socket goes through dns.lookup on libuv's small thread pool.
 */
const literalLookup: NonNullable<SocketOptions['lookup']> = (address, _options, callback) => {
  callback(null, address, isIPv6(address) ? 6 : 4);
};

function withDeadline<T>(clock: Clock, ms: number, work: (settle: (value: T) => void) => () => void, onTimeout: T): Promise<T> {
  return new Promise((resolve) => {
    let done = false;
    let cleanup = (): void => {
      // Until work() has returned its own: settle() may run inside work().
    };
    const settle = (value: T) => {
      if (done) return;
      done = true;
      timer.cancel();
      cleanup();
      resolve(value);
    };
    const timer = clock.after(ms, () => settle(onTimeout));
    cleanup = work(settle);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- settle() may have run inside work()
    if (done) cleanup();
  });
}

interface Waiter {
  query: Buffer;
  settle: (result: UdpResult) => void;
}

/** One connected UDP socket and the questions waiting on it, by ID. */
class UdpChannel {
  private readonly socket: Socket;
  private readonly waiting = new Map<number, Waiter>();
  private sent = 0;
  private closed = false;
  /** Replaced by a successor: it closes once its last question is settled. */
  private retired = false;
  /** Queries sent before the socket finished connecting (a connected socket's send needs no address). */
  private queued: Buffer[] | null = [];

  /** `previous`, the socket this one replaces, is retired once this one is bound. */
  constructor(to: UpstreamAddress, private previous: UdpChannel | null) {
    this.socket = createSocket({ type: isIPv6(to.host) ? 'udp6' : 'udp4', lookup: literalLookup });
    this.socket.on('message', (reply) => {
      if (reply.length < 2) return;
      const waiter = this.waiting.get(reply.readUInt16BE(0));
      if (!waiter) return;
      const parsed = parseUpstreamResponse(reply, waiter.query);
      // A reply that does not match the question (spoofed or garbled) is ignored, not fatal.
      if (!parsed.ok) return;
      waiter.settle(parsed.truncated ? { ok: true, truncated: true } : { ok: true, stored: parsed.stored, transport: 'udp' });
    });
    // On a connected socket an error means the upstream is unreachable: it fails every question on it.
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      for (const waiter of [...this.waiting.values()]) waiter.settle({ ok: false, reason: `UDP: ${err.code ?? err.message}` });
    });
    this.socket.connect(to.port, to.host, () => {
      this.retirePrevious();
      const queued = this.queued ?? [];
      this.queued = null;
      if (!this.closed) for (const query of queued) this.socket.send(query);
    });
  }

  get exhausted(): boolean {
    return this.sent >= QUERIES_PER_SOCKET;
  }

  /** Sends `query` (its ID made unique on this socket); returns the cleanup that forgets it. */
  send(query: Buffer, settle: (result: UdpResult) => void): () => void {
    let id = query.readUInt16BE(0);
    while (this.waiting.has(id)) id = randomInt(0x10000);
    query.writeUInt16BE(id, 0);
    this.waiting.set(id, { query, settle });
    this.sent++;
    if (this.queued) this.queued.push(query);
    else this.socket.send(query);
    return () => {
      this.waiting.delete(id);
      this.closeIfDone();
    };
  }

  /**
   * Called once the successor socket is bound: closing only then means the kernel cannot
   * hand the successor this socket's port, so every 256 queries the port really changes.
   */
  retire(): void {
    this.retired = true;
    this.closeIfDone();
  }

  closeIfDone(): void {
    if (this.retired && this.exhausted && this.waiting.size === 0 && !this.closed) {
      this.closed = true;
      this.socket.close();
    }
  }

  private retirePrevious(): void {
    this.previous?.retire();
    this.previous = null;
  }

  close(): void {
    this.retirePrevious();
    for (const waiter of [...this.waiting.values()]) waiter.settle({ ok: false, reason: 'forwarder stopped' });
    this.sent = QUERIES_PER_SOCKET;
    this.retire();
  }
}

/** The sockets to one upstream. */
export class UpstreamClient {
  private channel: UdpChannel | null = null;

  constructor(readonly address: UpstreamAddress, private readonly clock: Clock) {}

  /** One question within `timeoutMs` (UDP, then TCP if truncated). `query` is ours: its ID may be rewritten. */
  async exchange(query: Buffer, timeoutMs: number): Promise<Exchange> {
    const started = this.clock.now();
    const udp = await this.exchangeUdp(query, timeoutMs);
    if (!udp.ok || !('truncated' in udp)) return udp;
    return this.exchangeTcp(query, Math.max(1, timeoutMs - (this.clock.now() - started)));
  }

  close(): void {
    this.channel?.close();
    this.channel = null;
  }

  private exchangeUdp(query: Buffer, timeoutMs: number): Promise<UdpResult> {
    if (!this.channel || this.channel.exhausted) {
      this.channel = new UdpChannel(this.address, this.channel);
    }
    const channel = this.channel;
    return withDeadline<UdpResult>(this.clock, timeoutMs, (settle) => channel.send(query, settle), {
      ok: false, reason: `no UDP answer within ${timeoutMs} ms`,
    });
  }

  private exchangeTcp(query: Buffer, timeoutMs: number): Promise<Exchange> {
    const to = this.address;
    return withDeadline<Exchange>(this.clock, timeoutMs, (settle) => {
      const conn = connect({ host: to.host, port: to.port });
      const frame = Buffer.allocUnsafe(2 + query.length);
      frame.writeUInt16BE(query.length, 0);
      query.copy(frame, 2);
      let received = Buffer.alloc(0);
      conn.on('connect', () => conn.write(frame));
      conn.on('error', (err: NodeJS.ErrnoException) => settle({ ok: false, reason: `TCP: ${err.code ?? err.message}` }));
      conn.on('close', () => settle({ ok: false, reason: 'TCP: connection closed before the answer' }));
      conn.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length < 2 || received.length < 2 + received.readUInt16BE(0)) return;
        const parsed = parseUpstreamResponse(received.subarray(2, 2 + received.readUInt16BE(0)), query);
        settle(parsed.ok ? { ok: true, stored: parsed.stored, transport: 'tcp' } : { ok: false, reason: `TCP: ${parsed.reason}` });
      });
      return () => conn.destroy();
    }, { ok: false, reason: `no TCP answer within ${timeoutMs} ms` });
  }
}
