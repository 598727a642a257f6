// The runtime's limit: a minimal Node.js UDP server that answers every query with one
// pre-built answer, patching only the ID. Usage: echo-server.ts <port> [workers].
// With workers > 1, each worker thread binds its own socket with reusePort and the
// kernel spreads queries across them.
import { createSocket } from 'node:dgram';
import { isMainThread, Worker, workerData } from 'node:worker_threads';

// A response for "a.bench." A 10.0.0.1, TTL 5, AA set, ID patched per query.
const ANSWER = Buffer.from(
  '0000' + '8500' + '0001' + '0001' + '0000' + '0000'
  + '0161' + '0562656e6368' + '00' + '0001' + '0001'
  + 'c00c' + '0001' + '0001' + '00000005' + '0004' + '0a000001',
  'hex',
);

function serve(port: number, reusePort: boolean): void {
  // The same synchronous lookup for numeric addresses as presence-dns uses: the best a
  // Node.js UDP server does per packet.
  const socket = createSocket({ type: 'udp4', reusePort, lookup: (host, _options, callback) => callback(null, host, 4) });
  socket.on('message', (query, rinfo) => {
    const reply = Buffer.allocUnsafe(ANSWER.length);
    ANSWER.copy(reply);
    reply[0] = query[0];
    reply[1] = query[1];
    socket.send(reply, rinfo.port, rinfo.address);
  });
  socket.bind(port, '127.0.0.1', () => process.stdout.write(`listening ${socket.address().port}\n`));
}

if (isMainThread) {
  const port = Number(process.argv[2] ?? 0);
  const workers = Number(process.argv[3] ?? 1);
  if (workers > 1) for (let i = 0; i < workers; i++) new Worker(new URL(import.meta.url), { workerData: { port } });
  else serve(port, false);
} else {
  serve((workerData as { port: number }).port, true);
}
