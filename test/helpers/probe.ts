// A paced DNS probe: one query every `intervalMs` over UDP (or a client of the caller's,
// e.g. over TCP), cycling through names, each given `timeoutMs` to be answered. It records what a client would notice — unanswered
// queries, wrong answers, latency — for end-to-end tests and the benchmarks.
import { UdpClient, type DnsClient } from '../dns/client.ts';

export interface ProbeOptions {
  intervalMs?: number;
  timeoutMs?: number;
  /**
   * An answer is right when this says so (default: NOERROR with at least one address);
   * `sentAt` is when the query was sent (performance.now()), for answers that change.
   */
  expect?: (name: string, rcode: number, addresses: string[], sentAt: number) => boolean;
  /** What to ask through (default: a UDP socket of its own); closed by stop(). */
  client?: DnsClient;
}

export interface ProbeResult {
  sent: number;
  unanswered: number;
  wrong: Array<{ name: string; rcode: number; addresses: string[] }>;
  /** Milliseconds, one per answered query. */
  latencies: number[];
}

export class Probe {
  private readonly client: DnsClient;
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private readonly result: ProbeResult = { sent: 0, unanswered: 0, wrong: [], latencies: [] };

  constructor(port: number, private readonly names: string[], private readonly options: ProbeOptions = {}) {
    this.client = options.client ?? new UdpClient(port);
  }

  start(): this {
    const expect = this.options.expect ?? ((_n, rcode, addresses) => rcode === 0 && addresses.length > 0);
    this.timer = setInterval(() => {
      const name = this.names[this.result.sent % this.names.length];
      this.result.sent++;
      const started = performance.now();
      const asked = this.client.ask(name, 1, this.options.timeoutMs ?? 2000).then((reply) => {
        if (!reply) this.result.unanswered++;
        else {
          this.result.latencies.push(performance.now() - started);
          if (!expect(name, reply.rcode, reply.addresses, started)) this.result.wrong.push({ name, rcode: reply.rcode, addresses: reply.addresses });
        }
      });
      this.inFlight.add(asked);
      void asked.finally(() => this.inFlight.delete(asked));
    }, this.options.intervalMs ?? 5);
    return this;
  }

  /** Stops sending, waits for the queries in flight, and returns what was seen. */
  async stop(): Promise<ProbeResult> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.inFlight);
    this.client.close();
    return this.result;
  }
}
