// A test-side DNS client: builds query packets byte by byte (so tests can also break
// them) and streams many UDP queries over one socket — or over one TCP connection —
// decoding replies with dns2's independent decoder. Used where spawning one `dig` per
// query would be too slow.
import { createSocket, type Socket } from 'node:dgram';
import { connect, type Socket as TcpSocket } from 'node:net';
import { Packet } from 'dns2';

export interface QueryOptions {
  id?: number;
  flags?: number;
  type?: number;
  klass?: number;
  /** EDNS: advertised UDP size and version. */
  edns?: { udpSize: number; version?: number; dnssecOk?: boolean };
  qdcount?: number;
}

export function encodeName(name: string): Buffer {
  const parts = name === '' ? [] : name.split('.');
  return Buffer.concat([...parts.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);
}

export function buildQuery(name: string, o: QueryOptions = {}): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(o.id ?? 0x1234, 0);
  header.writeUInt16BE(o.flags ?? 0x0100, 2);
  header.writeUInt16BE(o.qdcount ?? 1, 4);
  header.writeUInt16BE(o.edns ? 1 : 0, 10);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(o.type ?? 1, 0);
  tail.writeUInt16BE(o.klass ?? 1, 2);
  const parts = [header, encodeName(name), tail];
  if (o.edns) {
    const opt = Buffer.alloc(11);
    opt.writeUInt16BE(41, 1);
    opt.writeUInt16BE(o.edns.udpSize, 3);
    opt.writeUInt32BE(((o.edns.version ?? 0) << 16) | (o.edns.dnssecOk ? 0x8000 : 0), 5);
    parts.push(opt);
  }
  return Buffer.concat(parts);
}

export interface Reply {
  rcode: number;
  addresses: string[];
  packet: Packet;
}

/** What a client asks through: `UdpClient` or `TcpClient`. */
export interface DnsClient {
  /** Resolves null when no reply came within `timeoutMs`. */
  ask(name: string, type?: number, timeoutMs?: number): Promise<Reply | null>;
  close(): void;
}

/**
 * Resolves a query as unanswered — after letting the event loop read what has already
 * arrived: when this process was stalled past a query's deadline, its timer fires before
 * the reply waiting in the socket is read, and that reply was not late.
 */
function giveUp(finish: (reply: Reply | null) => void): void {
  setImmediate(() => finish(null));
}

function decodeReply(bytes: Buffer): Reply {
  const packet = Packet.parse(bytes);
  const addresses = packet.answers.flatMap((a) => (a.address ? [a.address] : [])).sort();
  return { rcode: packet.header.rcode, addresses, packet };
}

/** Many UDP queries over one socket, matched to replies by id; a query with no reply in time resolves null. */
export class UdpClient implements DnsClient {
  private readonly socket: Socket = createSocket('udp4');
  private readonly pending = new Map<number, (reply: Reply | null) => void>();
  private nextId = 1;

  constructor(private readonly port: number, private readonly host = '127.0.0.1') {
    this.socket.on('message', (bytes) => {
      if (bytes.length < 12) return;
      const done = this.pending.get(bytes.readUInt16BE(0));
      if (!done) return;
      done(decodeReply(bytes));
    });
  }

  ask(name: string, type = 1, timeoutMs = 1000): Promise<Reply | null> {
    const id = this.nextId;
    this.nextId = (this.nextId % 0xffff) + 1;
    return new Promise((resolve) => {
      const timer = setTimeout(() => giveUp(finish), timeoutMs);
      const finish = (reply: Reply | null) => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(reply);
      };
      this.pending.set(id, finish);
      this.socket.send(buildQuery(name, { id, type }), this.port, this.host);
    });
  }

  /** Sends bytes as they are, expecting no particular reply. */
  sendRaw(packet: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(packet, this.port, this.host, (err) => (err ? reject(err) : resolve())));
  }

  close(): void {
    this.socket.close();
  }
}

/**
 * Many queries over one TCP connection, as a stub resolver keeps one open: two-byte
 * length framing, pipelined, matched to replies by id. A query with no reply in time, or
 * whose connection closed first, resolves null; the next query opens a new connection.
 */
export class TcpClient implements DnsClient {
  private socket: TcpSocket | null = null;
  private readonly pending = new Map<number, { socket: TcpSocket; finish: (reply: Reply | null) => void }>();
  private nextId = 1;
  private closed = false;
  /** Connections opened so far (more than one: the server closed one). */
  connections = 0;

  constructor(private readonly port: number, private readonly host = '127.0.0.1') {}

  private connection(): TcpSocket {
    if (this.socket) return this.socket;
    const socket = connect(this.port, this.host);
    this.socket = socket;
    this.connections++;
    socket.setNoDelay(true);
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const message = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + message.length);
        if (message.length >= 12) this.pending.get(message.readUInt16BE(0))?.finish(decodeReply(message));
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.socket === socket) this.socket = null;
      for (const p of [...this.pending.values()]) if (p.socket === socket) p.finish(null);
    });
    return socket;
  }

  ask(name: string, type = 1, timeoutMs = 1000): Promise<Reply | null> {
    if (this.closed) return Promise.resolve(null);
    const id = this.nextId;
    this.nextId = (this.nextId % 0xffff) + 1;
    const socket = this.connection();
    return new Promise((resolve) => {
      const timer = setTimeout(() => giveUp(finish), timeoutMs);
      const finish = (reply: Reply | null) => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(reply);
      };
      this.pending.set(id, { socket, finish });
      const query = buildQuery(name, { id, type });
      socket.write(Buffer.concat([Buffer.from([query.length >> 8, query.length & 0xff]), query]));
    });
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
  }
}
