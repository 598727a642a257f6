// Starting DNS: the main thread's UDP and TCP listeners, and with dns.workers > 1 the DNS
// worker threads that share its UDP ports. Where SO_REUSEPORT cannot be had, it says so
// and answers with the main thread alone.
import { availableParallelism } from 'node:os';
import type { Registry } from '../admin/metrics.ts';
import type { Logger } from '../log.ts';
import type { DnsConfig } from './config.ts';
import type { TopologyStore } from './topology.ts';
import type { DnsHandler } from './handler.ts';
import { DnsServer, type ListenAddress } from './server.ts';
import { DnsWorkers } from './workers.ts';

/** dns.workers as a number of threads. */
export function dnsThreads(setting: number | 'auto'): number {
  return setting === 'auto' ? Math.max(1, Math.min(availableParallelism(), 8)) : setting;
}

export interface RunningDns {
  bound: Array<ListenAddress & { transport: 'udp' | 'tcp' }>;
  /** Threads answering UDP (the main thread included). */
  threads: number;
  /** The DNS worker threads, when dns.workers > 1. */
  workers: DnsWorkers | null;
  stop(): Promise<void>;
}

export async function startDns(options: {
  config: DnsConfig;
  handler: DnsHandler;
  topology: TopologyStore;
  recursionAvailable: () => boolean;
  logLevel: string;
  logger: Logger;
  metrics: Registry;
}): Promise<RunningDns> {
  const { config, handler, logger, metrics } = options;
  const threads = dnsThreads(config.workers);
  const serve = (reusePort: boolean) => new DnsServer({ listen: config.listen, handler, logger, metrics, reusePort });
  let server = serve(threads > 1);
  let workers: DnsWorkers | null = null;
  try {
    await server.start();
  } catch (err) {
    if (threads === 1) throw err;
    logger.warn({ err: (err as Error).message, workers: threads },
      'SO_REUSEPORT is not available here, so dns.workers cannot share the DNS ports: answering with the main thread alone');
    await server.stop();
    server = serve(false);
    await server.start();
  }
  if (threads > 1 && server.reusePort) {
    workers = new DnsWorkers({
      count: threads - 1,
      listen: server.bound.filter((b) => b.transport === 'udp').map(({ address, port }) => ({ address, port })),
      handler, topology: options.topology, recursionAvailable: options.recursionAvailable, logger, metrics,
      settings: {
        ttl: config.ttl, negativeTtl: config.negative_ttl ?? config.ttl, maxUdpSize: config.max_udp_size,
        answerCacheBytes: config.answer_cache_bytes, domains: config.domains, logLevel: options.logLevel,
      },
    });
    await workers.start();
  }
  return {
    bound: server.bound,
    threads: 1 + (workers?.size ?? 0),
    workers,
    async stop() {
      await Promise.all([server.stop(), workers?.stop()]);
    },
  };
}
