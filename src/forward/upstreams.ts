// Which upstream recursors exist and which to ask first: parsing `host[:port]` and
// resolv.conf, per-upstream health (consecutive failures mark one down; a probe with
// backoff brings it back) and the selection policies. Pure apart from the clock.
import { isIP } from 'node:net';
import type { ListenAddress } from '../dns/server.ts';
import type { Clock, Timer } from '../clock.ts';
import { backgroundFailed, inBackground } from '../util/background.ts';
import { isLoopback } from '../util/ip.ts';

export class ForwardError extends Error {
  /** `reason` without the key, for callers (the config schema) that name the key themselves. */
  constructor(readonly code: string, key: string, readonly reason: string) {
    super(`${key}: ${reason}`);
  }
}

export interface UpstreamAddress {
  host: string;
  port: number;
  /** `host:port`, IPv6 in brackets: the metrics label and log name. */
  label: string;
}

export type Policy = 'sequential' | 'random' | 'fastest';

function address(host: string, port: number): UpstreamAddress {
  return { host, port, label: isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}` };
}

/** `10.0.0.2`, `10.0.0.2:5390`, `::1`, `[::1]:5390` → address; the host must be an IP. */
export function parseUpstream(text: string): UpstreamAddress {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  let host = text;
  let port = '53';
  if (bracketed) {
    host = bracketed[1];
    port = bracketed.at(2) ?? '53';
  } else if (text.split(':').length === 2) {
    [host, port] = text.split(':');
  }
  const portNumber = Number(port);
  if (!isIP(host) || !/^\d+$/.test(port) || portNumber < 1 || portNumber > 65535) {
    throw new ForwardError('BAD_UPSTREAM', 'forward.upstreams', `"${text}" is not an IP address with an optional port (e.g. "10.0.0.2", "10.0.0.2:5390", "[::1]:53")`);
  }
  return address(host, portNumber);
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/**
 * The `nameserver` lines of a resolv.conf (always port 53), without the daemon itself:
 * an address we listen on at port 53, or any loopback address when we listen on port 53
 * on loopback or on every address — forwarding to ourselves would loop.
 */
export function resolvConfUpstreams(text: string, listen: ListenAddress[]): UpstreamAddress[] {
  const on53 = listen.filter((l) => l.port === 53).map((l) => l.address);
  const selfLoopback = on53.some((a) => WILDCARDS.has(a) || isLoopback(a));
  const out: UpstreamAddress[] = [];
  for (const line of text.split('\n')) {
    const [keyword, host] = line.trim().split(/\s+/);
    if (keyword !== 'nameserver' || !host || !isIP(host.split('%')[0])) continue;
    if (on53.includes(host) || (selfLoopback && isLoopback(host))) continue;
    if (!out.some((u) => u.host === host)) out.push(address(host, 53));
  }
  return out;
}

export interface HealthOptions {
  /** Consecutive failures that mark an upstream down. */
  maxFails: number;
  /** First probe delay after going down, ms; doubles per failed probe up to `maxProbeMs`. */
  probeMs: number;
  maxProbeMs: number;
}

/** Delay before probe number `attempt` (0-based) of an upstream that is down. */
export function probeDelay(attempt: number, options: HealthOptions): number {
  return Math.min(options.probeMs * 2 ** Math.min(attempt, 30), options.maxProbeMs);
}

export interface UpstreamHooks {
  /** Sends one health probe; resolves true when the upstream answered at all. */
  probe(upstream: Upstream): Promise<boolean>;
  probeFailed(upstream: Upstream): void;
  /** The upstream was marked down (true) or came back (false). */
  changed(upstream: Upstream, down: boolean): void;
}

/** One upstream and its health: marked down after consecutive failures, probed with backoff until it answers. */
export class Upstream {
  fails = 0;
  down = false;
  /** Smoothed round-trip time, ms; null until the first answer. */
  rttMs: number | null = null;
  private probeAttempt = 0;
  private probeTimer: Timer | null = null;
  private stopped = false;

  constructor(
    readonly address: UpstreamAddress,
    private readonly options: HealthOptions,
    private readonly clock: Clock,
    private readonly hooks: UpstreamHooks,
  ) {}

  succeeded(rttMs: number): void {
    this.fails = 0;
    this.rttMs = this.rttMs === null ? rttMs : this.rttMs * 0.7 + rttMs * 0.3;
    if (this.down) this.recovered();
  }

  failed(): void {
    this.fails++;
    if (!this.down && !this.stopped && this.fails >= this.options.maxFails) {
      this.down = true;
      this.probeAttempt = 0;
      this.hooks.changed(this, true);
      this.scheduleProbe();
    }
  }

  /** No more probes: the upstream was removed or the forwarder stopped. */
  stop(): void {
    this.stopped = true;
    this.cancelProbe();
  }

  private cancelProbe(): void {
    this.probeTimer?.cancel();
    this.probeTimer = null;
  }

  private recovered(): void {
    this.down = false;
    this.fails = 0;
    this.cancelProbe();
    this.hooks.changed(this, false);
  }

  private scheduleProbe(): void {
    this.probeTimer = this.clock.after(probeDelay(this.probeAttempt++, this.options), () => {
      this.probeTimer = null;
      // A probe that throws counts as a failed one: probing goes on.
      const probe = this.hooks.probe(this).catch((err: unknown) => {
        backgroundFailed('forward_probe', err);
        return false;
      });
      inBackground('forward_probe', probe.then((ok) => {
        if (!this.down || this.stopped) return;
        if (ok) this.recovered();
        else {
          this.hooks.probeFailed(this);
          this.scheduleProbe();
        }
      }));
    });
  }
}

/** The order to try upstreams in: healthy ones by policy, then those marked down (as a last resort). */
export function orderUpstreams(upstreams: Upstream[], policy: Policy, random: () => number = Math.random): Upstream[] {
  const up = upstreams.filter((u) => !u.down);
  const down = upstreams.filter((u) => u.down);
  if (policy === 'random') {
    for (let i = up.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [up[i], up[j]] = [up[j], up[i]];
    }
  } else if (policy === 'fastest') {
    // Unmeasured upstreams sort first so each gets measured.
    up.sort((a, b) => (a.rttMs ?? -1) - (b.rttMs ?? -1));
  }
  return [...up, ...down];
}
