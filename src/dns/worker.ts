// A DNS worker thread (dns.workers): one more event loop answering UDP on the daemon's
// ports, each with a socket of its own in the same SO_REUSEPORT group, so the kernel
// spreads queries over the threads. It answers platform names from the same topology
// image as every other thread (shared memory, never copied), following the images and
// deltas the main thread relays, and from the answer cache all DNS threads share. Names
// it does not serve go to the main thread's forwarder; its counters are folded into the
// one /metrics.
import { threadId, workerData } from 'node:worker_threads';
import { Registry } from '../admin/metrics.ts';
import { createLogger } from '../log.ts';
import { ViewFollower } from './follower.ts';
import { reportBackgroundFailures } from '../util/background.ts';
import { parentThreadPort } from '../util/worker-thread.ts';
import { DnsHandler, type Client, type NextAnswer, type NextHandler } from './handler.ts';
import { DnsServer } from './server.ts';
import type { DnsWorkerOptions, FromDnsWorker, ToDnsWorker } from './worker-protocol.ts';

const options = workerData as DnsWorkerOptions;
const logger = createLogger(options.logLevel).child({ module: 'dns-worker' });
reportBackgroundFailures(logger);
const port = parentThreadPort();
const send = (message: FromDnsWorker, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

/** The main thread's forwarder, one message away. */
class MainThreadForwarder implements NextHandler {
  recursionAvailable = options.recursionAvailable;
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: Uint8Array | null) => void>();

  async handle(_query: unknown, packet: Buffer, client: Client): Promise<NextAnswer | null> {
    const id = this.nextId++;
    const reply = await new Promise<Uint8Array | null>((resolve) => {
      this.waiting.set(id, resolve);
      send({ type: 'forward', id, packet, client });
    });
    return reply ? { packet: Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength) } : null;
  }

  answered(id: number, reply: Uint8Array | null): void {
    this.waiting.get(id)?.(reply);
    this.waiting.delete(id);
  }
}

const follower = new ViewFollower(options.domains);
if (options.catchUp) follower.start(options.catchUp);
const metrics = new Registry();
const handler = new DnsHandler({
  ttl: options.ttl, negativeTtl: options.negativeTtl, maxUdpSize: options.maxUdpSize, metrics,
  answerCacheBytes: options.answerCacheBytes, currentIndex: () => follower.view,
  answerCache: options.answerCache ?? undefined, answerStamps: options.answerStamps,
});
const forwarder = new MainThreadForwarder();
handler.next = forwarder;
const server = new DnsServer({ listen: options.listen, handler, logger, metrics, reusePort: true, udpOnly: true, thread: threadId });

port.on('message', (message: ToDnsWorker) => {
  switch (message.type) {
    case 'view': {
      const change = follower.receive(message.message);
      if (change) handler.topologyChanged(change, message.stamp);
      if (message.message.type === 'image') send({ type: 'holding', bufferId: follower.bufferId });
      return;
    }
    case 'recursion':
      forwarder.recursionAvailable = message.available;
      return;
    case 'forwarded':
      forwarder.answered(message.id, message.reply);
      return;
    case 'metrics':
      void metrics.snapshot().then((data) => send({ type: 'metrics', id: message.id, data }));
      return;
    case 'stop':
      void server.stop().finally(() => process.exit(0));
      return;
  }
});

await server.start();
send({ type: 'listening' });
