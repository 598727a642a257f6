// The messages between the main thread (DnsWorkers) and a DNS worker thread (worker.ts).
import type { MetricsSnapshot } from '../admin/metrics.ts';
import type { CatchUp, ViewMessage } from '../control/protocol.ts';
import type { Client } from './handler.ts';
import type { ListenAddress } from './server.ts';

export interface DnsWorkerOptions {
  /** The main thread's UDP addresses, bound ports (the worker joins them with SO_REUSEPORT). */
  listen: ListenAddress[];
  ttl: number;
  negativeTtl: number;
  maxUdpSize: number;
  answerCacheBytes: number;
  domains: string[];
  logLevel: string;
  /** The view in service when the worker starts (null: none yet). */
  catchUp: CatchUp | null;
  /** The main thread's fast-path change stamps at the same point. */
  answerStamps: Uint32Array;
  /** The answer cache all DNS threads share, and the log this worker writes (null: the cache is off). */
  answerCache: { buffer: SharedArrayBuffer; log: number } | null;
  recursionAvailable: boolean;
}

export type ToDnsWorker =
  | { type: 'view'; message: ViewMessage; stamp: number }
  /** Whether the forwarder has upstreams (the RA bit of every answer). */
  | { type: 'recursion'; available: boolean }
  | { type: 'forwarded'; id: number; reply: Uint8Array | null }
  | { type: 'metrics'; id: number }
  | { type: 'stop' };

export type FromDnsWorker =
  | { type: 'listening' }
  /** The worker now answers from the image buffer `bufferId` (the one before may be reused). */
  | { type: 'holding'; bufferId: number | null }
  /** A name the worker does not serve: the main thread's forwarder answers it. */
  | { type: 'forward'; id: number; packet: Uint8Array; client: Client }
  | { type: 'metrics'; id: number; data: MetricsSnapshot };
