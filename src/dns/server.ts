// The DNS transport: a UDP socket and a TCP listener (RFC 7766 framing, pipelining) per
// listen address, feeding raw messages to the handler. It is also the per-packet
// boundary: an exception while answering one message answers that message SERVFAIL (when
// its header is readable), is counted and logged at most once a second, and never ends
// the process. TCP is bounded so that no client can take memory or the event loop from
// the others: connections are capped (a new one evicts the least recently active),
// each connection has a few queries in flight at most and stops reading while its
// replies back up, and one that sends no complete query for the idle timeout — slow,
// half-open or silent — is closed. Stopping closes the listeners first and then waits
// for queries already in flight.
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import type { HotCounter, Registry } from '../admin/metrics.ts';
import { systemClock, type Clock, type Timer } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Client, DnsHandler, Reply } from './handler.ts';
import { decodeQuery, encodeBareReply, encodeResponse, MIN_UDP_SIZE, Rcode } from '../codec/index.ts';

export interface ListenAddress {
  address: string;
  port: number;
}

export interface DnsServerOptions {
  listen: ListenAddress[];
  handler: DnsHandler;
  logger: Logger;
  metrics: Registry;
  clock?: Clock;
  /** A TCP connection that completes no query for this long is closed, ms (RFC 7766 suggests ≥ 10 s). */
  tcpIdleMs?: number;
  /** Open TCP connections at most; one more evicts the least recently active. */
  maxTcpConnections?: number;
  /** Queries of one TCP connection answered at a time; it is not read further meanwhile. */
  maxTcpInFlight?: number;
  /** SO_RCVBUF of each UDP socket, bytes (the kernel caps it at net.core.rmem_max). */
  udpReceiveBuffer?: number;
  /** Bind UDP with SO_REUSEPORT, so that other threads' sockets share the port (dns.workers). */
  reusePort?: boolean;
  /** UDP only, on the ports given (a DNS worker thread joining the main thread's ports). */
  udpOnly?: boolean;
  /** Which thread this server answers on (0: the main thread), for the per-thread query count. */
  thread?: number;
}

// The kernel default (~208 KiB, a few hundred queries) overflows on bursts and while a
// large topology is being swapped in; a few MiB absorbs them instead of dropping.
const UDP_RECEIVE_BUFFER = 4 * 1024 * 1024;
export const TCP_IDLE_MS = 10_000;
// Each connection holds at most a 64 KiB query being assembled plus one reply waiting for
// the client to read it: 256 of them stay within tens of MB, whatever the clients do.
export const MAX_TCP_CONNECTIONS = 256;
const MAX_TCP_IN_FLIGHT = 16;
const ERROR_LOG_INTERVAL_MS = 1000;

/** Takes the reply to one message, exactly once; null when there is none (a packet dropped). */
type Send = (reply: Buffer | null) => void;

/** The reply to a query whose answering threw: SERVFAIL with its question, or a bare one; null when not even the header is readable. */
function servfail(packet: Buffer): Buffer | null {
  const decoded = decodeQuery(packet);
  if (!decoded.ok) return decoded.id === null ? null : encodeBareReply(decoded.id, decoded.opcode, decoded.recursionDesired, Rcode.SERVFAIL);
  const { query } = decoded;
  try {
    return encodeResponse(packet, query, { rcode: Rcode.SERVFAIL, authoritative: false, answers: [], authority: [], additional: [] },
      { transport: 'udp', maxUdpSize: MIN_UDP_SIZE, recursionAvailable: false });
  } catch {
    return encodeBareReply(query.id, query.opcode, query.recursionDesired, Rcode.SERVFAIL);
  }
}

export class DnsServer {
  private readonly udp: Socket[] = [];
  private readonly tcp: Server[] = [];
  /** Open TCP connections, least recently active first (a query moves one to the end). */
  private readonly connections = new Map<TcpSocket, TcpSession>();
  private inFlight = 0;
  /** Set by stop(): new packets are dropped while in-flight ones are still answered. */
  private stopping = false;
  private closed = false;
  private drained: (() => void) | null = null;
  private readonly clock: Clock;
  private readonly failures;
  private readonly evictions;
  private readonly udpQueries: HotCounter;
  private lastFailureLog = -Infinity;
  private unloggedFailures = 0;
  /** The addresses actually bound (port 0 in the config picks a free port). */
  readonly bound: Array<ListenAddress & { transport: 'udp' | 'tcp' }> = [];

  constructor(private readonly options: DnsServerOptions) {
    this.clock = options.clock ?? systemClock;
    this.failures = options.metrics.counter('presence_dns_query_failures_total', 'Queries whose answering threw; each was answered SERVFAIL (dropped when its header was unreadable).');
    this.evictions = options.metrics.counter('presence_dns_tcp_evictions_total', 'TCP connections closed to make room for a new one (the connection limit was reached).');
    const udpQueries = options.metrics.counter('presence_dns_udp_queries_total', 'UDP queries received, by the thread that answered them (0: the main thread; see dns.workers).', { labelNames: ['thread'] });
    this.udpQueries = options.metrics.hotCounter(udpQueries, { thread: String(options.thread ?? 0) });
    const connections = this.connections;
    options.metrics.gauge('presence_dns_tcp_connections', 'Open DNS TCP connections.', { collect: () => connections.size });
  }

  /** Whether the UDP sockets share their ports with other threads' (SO_REUSEPORT). */
  get reusePort(): boolean {
    return this.options.reusePort ?? false;
  }

  get tcpConnections(): number {
    return this.connections.size;
  }

  async start(): Promise<void> {
    if (this.options.udpOnly) {
      for (const { address, port } of this.options.listen) await this.listenUdp(address, port);
      return;
    }
    for (const { address, port } of this.options.listen) {
      // The TCP listener takes the UDP socket's port, so port 0 yields one port for both.
      // A port the kernel picked for UDP can already be taken for TCP: pick again.
      for (let attempt = 1; ; attempt++) {
        const udp = await this.listenUdp(address, port);
        try {
          await this.listenTcp(address, udp.port);
          break;
        } catch (err) {
          if (port !== 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt === 10) throw err;
          udp.socket.close();
          this.udp.splice(this.udp.indexOf(udp.socket), 1);
          this.bound.splice(this.bound.findIndex((b) => b.transport === 'udp' && b.port === udp.port), 1);
        }
      }
    }
  }

  private listenUdp(address: string, port: number): Promise<{ socket: Socket; port: number }> {
    const family = isIPv6(address) ? 6 : 4;
    const socket = createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      reusePort: this.options.reusePort ?? false,
      recvBufferSize: this.options.udpReceiveBuffer ?? UDP_RECEIVE_BUFFER,
      // Replies go to the sender's numeric address: no resolver round (a process.nextTick
      // per packet with the default lookup) before the send. ~10% less CPU per query.
      lookup: (host, _options, callback) => callback(null, host, family),
    });
    socket.on('message', (packet, rinfo) => {
      if (this.stopping) return;
      this.udpQueries.inc();
      const client: Client = { address: rinfo.address, port: rinfo.port, transport: 'udp' };
      this.answer(packet, client, (reply) => {
        // The socket closes only after the drain, but a reply past the grace period finds it closed.
        if (reply && !this.closed) socket.send(reply, rinfo.port, rinfo.address);
      });
    });
    socket.on('error', (err) => this.options.logger.error({ err: err.message }, 'UDP socket error'));
    this.udp.push(socket);
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, address, () => {
        socket.off('error', reject);
        const bound = socket.address().port;
        this.bound.push({ address, port: bound, transport: 'udp' });
        resolve({ socket, port: bound });
      });
    });
  }

  private listenTcp(address: string, port: number): Promise<void> {
    const server = createServer((conn) => this.accept(conn));
    this.tcp.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => {
        server.off('error', reject);
        this.bound.push({ address, port, transport: 'tcp' });
        resolve();
      });
    });
  }

  private accept(conn: TcpSocket): void {
    if (this.stopping) {
      conn.destroy();
      return;
    }
    if (this.connections.size >= (this.options.maxTcpConnections ?? MAX_TCP_CONNECTIONS)) {
      const oldest = this.connections.entries().next();
      if (!oldest.done) {
        const [idlestConn, idlest] = oldest.value;
        // Out of the map now, not at its 'close': a burst of new connections evicts one each.
        this.connections.delete(idlestConn);
        idlest.close();
      }
      this.evictions.inc();
    }
    const client: Client = { address: conn.remoteAddress ?? '', port: conn.remotePort ?? 0, transport: 'tcp' };
    const session = new TcpSession(conn, {
      idleMs: this.options.tcpIdleMs ?? TCP_IDLE_MS,
      maxInFlight: this.options.maxTcpInFlight ?? MAX_TCP_IN_FLIGHT,
      clock: this.clock,
      answer: (message, send) => this.answer(message, client, send),
      active: () => {
        // Most recently active last: the first entry is the one to evict.
        this.connections.delete(conn);
        this.connections.set(conn, session);
      },
      accepting: () => !this.stopping,
    });
    this.connections.set(conn, session);
    conn.on('close', () => this.connections.delete(conn));
  }

  /**
   * Answers one message through the handler: at once when its reply is at hand, else when
   * the promise settles. Whatever the handler throws — or sending the reply — is answered
   * SERVFAIL (if it can still be sent) and counted here, never past this point.
   */
  private answer(packet: Buffer, client: Client, send: Send): void {
    let reply: Reply;
    try {
      reply = this.options.handler.answer(packet, client);
    } catch (err) {
      this.failed(packet, client, err, send);
      return;
    }
    if (!(reply instanceof Promise)) {
      this.deliver(packet, client, send, reply);
      return;
    }
    this.inFlight++;
    reply.then((bytes) => this.deliver(packet, client, send, bytes), (err: unknown) => this.failed(packet, client, err, send))
      .finally(() => {
        if (--this.inFlight === 0) this.drained?.();
      });
  }

  private deliver(packet: Buffer, client: Client, send: Send, reply: Buffer | null): void {
    try {
      send(reply);
    } catch (err) {
      this.failed(packet, client, err, null);
    }
  }

  private failed(packet: Buffer, client: Client, err: unknown, send: Send | null): void {
    this.failures.inc();
    if (send) this.deliver(packet, client, send, servfail(packet));
    const now = this.clock.now();
    if (now - this.lastFailureLog < ERROR_LOG_INTERVAL_MS) {
      this.unloggedFailures++;
      return;
    }
    this.lastFailureLog = now;
    const error = err instanceof Error ? err : new Error(String(err));
    this.options.logger.error(
      { err: error.message, stack: error.stack, client: `${client.address}:${client.port}`, transport: client.transport, sinceLastLog: this.unloggedFailures },
      'answering a query failed; answered SERVFAIL and kept serving (logged at most once a second; every failure is counted in presence_dns_query_failures_total)',
    );
    this.unloggedFailures = 0;
  }

  /** Stops taking queries, then waits (at most `graceMs`) for those in flight to be answered. */
  async stop(graceMs = 3000): Promise<void> {
    this.stopping = true;
    const closed = Promise.all(this.tcp.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        this.drained = resolve;
        setTimeout(resolve, graceMs).unref();
      });
    }
    this.closed = true;
    for (const socket of this.udp) socket.close();
    // end() flushes the replies already written before closing each connection.
    for (const session of this.connections.values()) session.end();
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, graceMs).unref())]);
  }
}

interface TcpSessionOptions {
  idleMs: number;
  maxInFlight: number;
  clock: Clock;
  answer: (message: Buffer, send: Send) => void;
  /** Called on each complete query: the connection is in use. */
  active: () => void;
  /** False once the server stops taking queries. */
  accepting: () => boolean;
}

/**
 * One TCP connection: reassembles length-prefixed messages (RFC 1035 §4.2.2) and answers
 * them in order of arrival, pipelined. It reads no further while `maxInFlight` queries
 * are unanswered or the client is not reading its replies, so its memory stays at one
 * partial message plus one reply, and it closes the connection when no complete query
 * arrives for `idleMs` (a byte now and then does not count: a slow sender is closed too).
 */
class TcpSession {
  private buffered: Buffer = Buffer.alloc(0);
  private inFlight = 0;
  private blocked = false;
  /** Inside process(): a reply given synchronously lets its loop go on instead of recursing. */
  private processing = false;
  private idle: Timer | null = null;

  constructor(private readonly conn: TcpSocket, private readonly options: TcpSessionOptions) {
    conn.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
      this.process();
    });
    conn.on('drain', () => {
      this.blocked = false;
      this.process();
    });
    conn.on('error', () => conn.destroy());
    conn.on('close', () => this.idle?.cancel());
    this.armIdle();
  }

  /** Closes the connection now (evicted). */
  close(): void {
    this.conn.destroy();
  }

  /** Closes it after the replies already written are flushed (shutdown). */
  end(): void {
    this.idle?.cancel();
    this.conn.end();
  }

  private armIdle(): void {
    this.idle?.cancel();
    this.idle = this.options.clock.after(this.options.idleMs, () => {
      // Queries still being answered (forwarded ones can take seconds) keep it open.
      if (this.inFlight > 0) this.armIdle();
      else this.conn.destroy();
    });
  }

  private process(): void {
    if (this.processing) return;
    this.processing = true;
    try {
      while (!this.blocked && this.inFlight < this.options.maxInFlight && this.buffered.length >= 2 && !this.conn.destroyed) {
        const length = this.buffered.readUInt16BE(0);
        if (this.buffered.length < 2 + length) break;
        const message = this.buffered.subarray(2, 2 + length);
        this.buffered = this.buffered.subarray(2 + length);
        if (!this.options.accepting()) continue;
        this.options.active();
        this.armIdle();
        this.inFlight++;
        this.options.answer(message, (reply) => this.answered(reply));
      }
    } finally {
      this.processing = false;
    }
    // Not reading while it cannot take more: the kernel's window then slows the client.
    if (this.blocked || this.inFlight >= this.options.maxInFlight) this.conn.pause();
    else this.conn.resume();
  }

  private answered(reply: Buffer | null): void {
    this.inFlight--;
    if (reply) this.write(reply);
    this.process();
  }

  private write(reply: Buffer): void {
    if (this.conn.destroyed) return;
    const frame = Buffer.allocUnsafe(2 + reply.length);
    frame.writeUInt16BE(reply.length, 0);
    reply.copy(frame, 2);
    if (!this.conn.write(frame)) this.blocked = true;
  }
}
