// Re-sends of `router.unregister`. NATS delivers at most once, so one lost unregister
// would leave gorouter sending traffic to a dead backend until it prunes the route;
// re-sending a few times closes that gap. The count is bounded and a later register of
// the same endpoint cancels it: Diego's unbounded re-send cache kept unregistering
// routes that had come back, and they flapped.
import type { RouteEndpoint } from './messages.ts';

export class PendingUnregisters {
  private readonly pending = new Map<string, { endpoint: RouteEndpoint; remaining: number }>();

  /** @param resends how many more times, after the first send, an unregister goes out. */
  constructor(private readonly resends: number) {}

  /** Records an endpoint whose first unregister has just been sent. */
  add(endpoint: RouteEndpoint): void {
    if (this.resends > 0) this.pending.set(endpoint.key, { endpoint, remaining: this.resends });
    else this.pending.delete(endpoint.key);
  }

  /** The endpoint is registered again: its old unregisters must not follow the register. */
  cancel(key: string): void {
    this.pending.delete(key);
  }

  /** The unregisters to re-send this interval; each one counts against its budget. */
  due(): RouteEndpoint[] {
    const out: RouteEndpoint[] = [];
    for (const [key, entry] of this.pending) {
      out.push(entry.endpoint);
      if (--entry.remaining === 0) this.pending.delete(key);
    }
    return out;
  }

  /** Everything still pending, without spending budget (after a reconnect, or at exit). */
  all(): RouteEndpoint[] {
    return [...this.pending.values()].map((entry) => entry.endpoint);
  }

  get size(): number {
    return this.pending.size;
  }
}
