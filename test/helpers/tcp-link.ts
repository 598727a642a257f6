// A TCP link on loopback between a client and a server, relaying bytes both ways, that a
// test can black-hole: after `cut()` nothing more goes either way while both connections
// stay open — a link that drops every packet, which a client notices only when its own
// keep-alive gives up.
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TcpLink {
  private readonly sockets = new Set<Socket>();
  private isCut = false;

  private constructor(private readonly server: Server, readonly port: number) {}

  /** A link to 127.0.0.1:`targetPort`, listening on a free loopback port. */
  static async to(targetPort: number): Promise<TcpLink> {
    let link: TcpLink | null = null;
    const server = createServer((client) => link?.relay(client, targetPort));
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('the TCP link has no port');
    link = new TcpLink(server, address.port);
    return link;
  }

  private relay(client: Socket, targetPort: number): void {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.once('close', () => {
        this.sockets.delete(s);
        (s === client ? upstream : client).destroy();
      });
    }
    client.on('data', (data: Buffer) => this.isCut || upstream.write(data));
    upstream.on('data', (data: Buffer) => this.isCut || client.write(data));
  }

  /** From now on the link carries nothing, either way. */
  cut(): void {
    this.isCut = true;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
