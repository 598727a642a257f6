// The DNS transport: a UDP socket and a TCP listener (RFC 7766 framing, pipelining,
// idle timeout) per listen address, feeding raw messages to the handler. Stopping
// closes the listeners first and then waits for queries already in flight.
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import type { Logger } from '../log.ts';
import type { Client, DnsHandler } from './handler.ts';

export interface ListenAddress {
  address: string;
  port: number;
}

export interface DnsServerOptions {
  listen: ListenAddress[];
  handler: DnsHandler;
  logger: Logger;
  /** Idle TCP connections are closed after this long, ms (RFC 7766 suggests ≥ 10 s). */
  tcpIdleMs?: number;
  maxTcpConnections?: number;
  /** SO_RCVBUF of each UDP socket, bytes (the kernel caps it at net.core.rmem_max). */
  udpReceiveBuffer?: number;
}

// The kernel default (~208 KiB, a few hundred queries) overflows on bursts and while a
// large topology is being swapped in; a few MiB absorbs them instead of dropping.
const UDP_RECEIVE_BUFFER = 4 * 1024 * 1024;

const MAX_TCP_MESSAGE = 65535;

export class DnsServer {
  private readonly udp: Socket[] = [];
  private readonly tcp: Server[] = [];
  private readonly connections = new Set<TcpSocket>();
  private inFlight = 0;
  /** Set by stop(): new packets are dropped while in-flight ones are still answered. */
  private stopping = false;
  private closed = false;
  private drained: (() => void) | null = null;
  /** The addresses actually bound (port 0 in the config picks a free port). */
  readonly bound: Array<ListenAddress & { transport: 'udp' | 'tcp' }> = [];

  constructor(private readonly options: DnsServerOptions) {}

  async start(): Promise<void> {
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
      recvBufferSize: this.options.udpReceiveBuffer ?? UDP_RECEIVE_BUFFER,
      // Replies go to the sender's numeric address: no resolver round (a process.nextTick
      // per packet with the default lookup) before the send. ~10% less CPU per query.
      lookup: (host, _options, callback) => callback(null, host, family),
    });
    const { handler } = this.options;
    socket.on('message', (packet, rinfo) => {
      if (this.stopping) return;
      const client: Client = { address: rinfo.address, port: rinfo.port, transport: 'udp' };
      const fast = handler.answerFast(packet, client);
      if (fast) {
        socket.send(fast, rinfo.port, rinfo.address);
        return;
      }
      this.run(packet, client, (reply) => {
        // The socket closes only after the drain, but a reply past the grace period finds it closed.
        if (!this.closed) socket.send(reply, rinfo.port, rinfo.address);
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
    const server = createServer((conn) => this.serveConnection(conn));
    server.maxConnections = this.options.maxTcpConnections ?? 1000;
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

  private serveConnection(conn: TcpSocket): void {
    this.connections.add(conn);
    conn.setTimeout(this.options.tcpIdleMs ?? 10_000, () => conn.destroy());
    conn.on('close', () => this.connections.delete(conn));
    conn.on('error', () => conn.destroy());
    const client: Client = { address: conn.remoteAddress ?? '', port: conn.remotePort ?? 0, transport: 'tcp' };
    let buffered: Buffer = Buffer.alloc(0);
    conn.on('data', (chunk: Buffer) => {
      if (this.stopping) return;
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const message = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        const send = (reply: Buffer) => {
          if (conn.destroyed) return;
          const frame = Buffer.allocUnsafe(2 + reply.length);
          frame.writeUInt16BE(reply.length, 0);
          reply.copy(frame, 2);
          // A client that sends but does not read must not make us buffer without bound.
          if (!conn.write(frame)) {
            conn.pause();
            conn.once('drain', () => conn.resume());
          }
        };
        const fast = this.options.handler.answerFast(message, client);
        if (fast) send(fast);
        else this.run(message, client, send);
      }
      if (buffered.length > 2 + MAX_TCP_MESSAGE) conn.destroy();
    });
  }

  private run(packet: Buffer, client: Client, send: (reply: Buffer) => void): void {
    this.inFlight++;
    this.options.handler.handle(packet, client).then(
      (reply) => {
        if (reply) send(reply);
      },
      (err: Error) => this.options.logger.error({ err: err.message, stack: err.stack }, 'query handler failed'),
    ).finally(() => {
      if (--this.inFlight === 0) this.drained?.();
    });
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
    for (const conn of this.connections) conn.end();
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, graceMs).unref())]);
  }
}
