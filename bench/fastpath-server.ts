// The echo server (echo-server.ts) with presence-dns's fast path in front of its send:
// the runtime's limit plus our per-query work and nothing else of the daemon (no DnsServer,
// no topology worker, no admin). Beside the echo and the daemon in `npm run bench`, it
// shows where the gap between them goes. Usage: fastpath-server.ts <topology.json>.
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { Registry } from '../src/admin/metrics.ts';
import { DnsHandler } from '../src/dns/handler.ts';
import { viewOf } from '../test/image/views.ts';

const view = viewOf(readFileSync(process.argv[2], 'utf8'));
const handler = new DnsHandler({ ttl: 5, negativeTtl: 30, maxUdpSize: 1232, metrics: new Registry(), currentIndex: () => view });
const socket = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024, lookup: (host, _options, callback) => callback(null, host, 4) });
socket.on('message', (query, rinfo) => {
  const reply = handler.answer(query, { address: rinfo.address, port: rinfo.port, transport: 'udp' });
  // Only what is answered at once: the benchmark asks platform names, which always are.
  if (Buffer.isBuffer(reply)) socket.send(reply, rinfo.port, rinfo.address);
});
socket.bind(0, '127.0.0.1', () => process.stdout.write(`listening ${socket.address().port}\n`));
