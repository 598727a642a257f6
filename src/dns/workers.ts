// dns.workers on the main thread: starts N − 1 DNS worker threads (worker.ts) that join
// the main thread's UDP ports with SO_REUSEPORT — the main thread's own sockets make the
// N-th — hands each the topology view to start from and then every image and delta as
// it arrives, answers the names they pass on through the forwarder, folds their counters
// into /metrics, and restarts a worker that dies while the others keep answering.
import type { Worker } from 'node:worker_threads';
import type { MetricsSnapshot, Registry } from '../admin/metrics.ts';
import type { Logger } from '../log.ts';
import type { TopologyStore } from './topology.ts';
import { siblingModule, startWorker } from '../util/worker-thread.ts';
import { errorMessage } from '../util/error-message.ts';
import type { DnsHandler } from './handler.ts';
import type { ListenAddress } from './server.ts';
import type { DnsWorkerOptions, FromDnsWorker, ToDnsWorker } from './worker-protocol.ts';

export interface DnsWorkersOptions {
  /** Worker threads to start (dns.workers − 1). */
  count: number;
  /** The main thread's bound UDP addresses. */
  listen: ListenAddress[];
  handler: DnsHandler;
  topology: TopologyStore;
  settings: Omit<DnsWorkerOptions, 'listen' | 'catchUp' | 'answerStamps' | 'answerCache' | 'recursionAvailable'>;
  recursionAvailable: () => boolean;
  logger: Logger;
  metrics: Registry;
}

const METRICS_TIMEOUT_MS = 2000;
const RESTART_MS = 1000;

export class DnsWorkers {
  private readonly workers = new Set<Worker>();
  private stopping = false;
  private recursion: boolean;
  private nextMetricsId = 1;
  private readonly restarts;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: DnsWorkersOptions) {
    this.recursion = options.recursionAvailable();
    this.restarts = options.metrics.counter('presence_dns_dns_worker_restarts_total', 'DNS worker threads that died and were restarted.');
    options.metrics.gauge('presence_dns_dns_workers', 'DNS worker threads answering UDP beside the main thread.', { collect: () => this.workers.size });
    options.metrics.addSource(() => this.collect());
    options.topology.relay((message, stamp) => this.broadcast({ type: 'view', message, stamp }));
    // RA follows the forwarder's upstreams; the workers hear of a change within a second.
    this.timer = setInterval(() => {
      const now = options.recursionAvailable();
      if (now !== this.recursion) this.broadcast({ type: 'recursion', available: (this.recursion = now) });
    }, 1000);
    this.timer.unref();
  }

  get size(): number {
    return this.workers.size;
  }

  async start(): Promise<void> {
    // Worker n writes log n of the answer cache (the main thread writes log 0); a restarted worker takes its predecessor's.
    await Promise.all(Array.from({ length: this.options.count }, (_, n) => this.spawn(n + 1)));
    this.options.logger.info({ threads: this.options.count + 1 }, 'DNS answered by the main thread and worker threads sharing its UDP ports');
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await Promise.all([...this.workers].map((w) => new Promise<void>((resolve) => {
      w.once('exit', () => resolve());
      w.postMessage({ type: 'stop' } satisfies ToDnsWorker);
      setTimeout(() => void w.terminate(), 3000).unref();
    })));
  }

  private broadcast(message: ToDnsWorker): void {
    for (const w of this.workers) w.postMessage(message);
  }

  private spawn(log: number): Promise<void> {
    const { settings, listen, topology, handler, logger } = this.options;
    const catchUp = topology.catchUp();
    const cache = handler.answerCache;
    const data: DnsWorkerOptions = {
      ...settings, listen, catchUp, answerStamps: handler.answerStamps(),
      answerCache: cache && { buffer: cache, log }, recursionAvailable: this.recursion,
    };
    const worker = startWorker(siblingModule(import.meta.url, 'worker'), data, [], `dns-${log}`);
    const key = `dns-worker-${worker.threadId}`;
    topology.hold(key, catchUp?.bufferId ?? null);
    // In the relay from now on: what arrives before it listens waits in its port, after the catch-up.
    this.workers.add(worker);
    return new Promise((resolve, reject) => {
      let listening = false;
      worker.on('message', (message: FromDnsWorker) => {
        switch (message.type) {
          case 'listening':
            listening = true;
            resolve();
            return;
          case 'forward': {
            const packet = Buffer.from(message.packet.buffer, message.packet.byteOffset, message.packet.byteLength);
            void handler.relay(packet, message.client).then(
              (reply) => worker.postMessage({ type: 'forwarded', id: message.id, reply } satisfies ToDnsWorker),
              () => worker.postMessage({ type: 'forwarded', id: message.id, reply: null } satisfies ToDnsWorker),
            );
            return;
          }
          case 'metrics':
            this.metricsReplies.get(message.id)?.(message.data);
            return;
          case 'holding':
            topology.hold(key, message.bufferId);
            return;
        }
      });
      worker.on('error', (err: Error) => logger.error({ err: err.message, stack: err.stack }, 'a DNS worker thread failed'));
      worker.once('exit', (code) => {
        this.workers.delete(worker);
        topology.hold(key, null);
        if (!listening) reject(new Error(`a DNS worker thread exited with ${code} before it was listening`));
        if (this.stopping || !listening) return;
        this.restarts.inc();
        logger.error({ code, threads: this.workers.size + 1 }, 'a DNS worker thread exited; the others keep answering; restarting it');
        setTimeout(() => void this.spawn(log).catch((err: unknown) => logger.error({ err: errorMessage(err) }, 'restarting a DNS worker thread failed')), RESTART_MS).unref();
      });
    });
  }

  private readonly metricsReplies = new Map<number, (data: MetricsSnapshot) => void>();

  /** Every worker's metrics, for the main registry to fold in (a worker that does not answer in time is left out). */
  private async collect(): Promise<MetricsSnapshot[]> {
    const replies = await Promise.all([...this.workers].map((w) => new Promise<MetricsSnapshot | null>((resolve) => {
      const id = this.nextMetricsId++;
      const timer = setTimeout(() => {
        this.metricsReplies.delete(id);
        resolve(null);
      }, METRICS_TIMEOUT_MS);
      this.metricsReplies.set(id, (data) => {
        clearTimeout(timer);
        this.metricsReplies.delete(id);
        resolve(data);
      });
      w.postMessage({ type: 'metrics', id } satisfies ToDnsWorker);
    })));
    return replies.filter((r): r is MetricsSnapshot => r !== null);
  }
}
