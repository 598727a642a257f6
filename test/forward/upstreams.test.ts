// Upstream addresses, resolv.conf, selection policies and the health state machine
// (failures mark down, probes with backoff bring back), on a manual clock.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  orderUpstreams, parseUpstream, probeDelay, resolvConfUpstreams, Upstream, type HealthOptions,
} from '../../src/forward/upstreams.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { required } from '../helpers/required.ts';
import { reportBackgroundFailures } from '../../src/util/background.ts';

const HEALTH: HealthOptions = { maxFails: 2, probeMs: 500, maxProbeMs: 30_000 };

describe('upstream addresses', () => {
  it('parses host[:port] with IPv6 in brackets, port 53 by default', () => {
    expect(parseUpstream('10.0.0.2')).toEqual({ host: '10.0.0.2', port: 53, label: '10.0.0.2:53' });
    expect(parseUpstream('127.0.0.1:5390')).toEqual({ host: '127.0.0.1', port: 5390, label: '127.0.0.1:5390' });
    expect(parseUpstream('[::1]:5390')).toEqual({ host: '::1', port: 5390, label: '[::1]:5390' });
    expect(parseUpstream('2001:db8::53')).toEqual({ host: '2001:db8::53', port: 53, label: '[2001:db8::53]:53' });
  });

  it('rejects names and bad ports with an error naming the key', () => {
    for (const bad of ['dns.example.com', '10.0.0.2:0', '10.0.0.2:70000', '[::1]:x', '']) {
      expect(() => parseUpstream(bad)).toThrow(expect.objectContaining({ code: 'BAD_UPSTREAM', message: expect.stringContaining('forward.upstreams') }));
    }
  });

  it('reads nameserver lines of resolv.conf and leaves out the daemon itself', () => {
    const text = '# comment\nsearch a.b\nnameserver 10.0.0.2\nnameserver 127.0.0.1\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver bogus\noptions ndots:5\nnameserver fe80::1%eth0\n';
    expect(resolvConfUpstreams(text, [{ address: '127.0.0.1', port: 5353 }]).map((u) => u.label))
      .toEqual(['10.0.0.2:53', '127.0.0.1:53', '127.0.0.53:53', '[fe80::1%eth0]:53']);
    expect(resolvConfUpstreams(text, [{ address: '127.0.0.1', port: 53 }]).map((u) => u.label))
      .toEqual(['10.0.0.2:53', '[fe80::1%eth0]:53']);
    expect(resolvConfUpstreams(text, [{ address: '10.0.0.2', port: 53 }]).map((u) => u.label))
      .toEqual(['127.0.0.1:53', '127.0.0.53:53', '[fe80::1%eth0]:53']);
  });
});

function upstreams(clock: ManualClock, probe: () => boolean) {
  const events: string[] = [];
  const make = (host: string) => new Upstream(parseUpstream(host), HEALTH, clock, {
    probe: (u) => {
      events.push(`probe ${u.address.host}`);
      // A probe that throws rejects, as the real (async) probe would.
      return new Promise((resolve) => resolve(probe()));
    },
    probeFailed: (u) => events.push(`probe failed ${u.address.host}`),
    changed: (u, down) => events.push(`${down ? 'down' : 'up'} ${u.address.host}`),
  });
  return { events, make };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('health', () => {
  it('marks an upstream down after max_fails consecutive failures; a success in between resets the count', () => {
    const clock = new ManualClock();
    const { events, make } = upstreams(clock, () => false);
    const u = make('10.0.0.1');
    u.failed();
    u.succeeded(3);
    u.failed();
    expect(u.down).toBe(false);
    u.failed();
    expect(u.down).toBe(true);
    expect(events).toEqual(['down 10.0.0.1']);
    u.stop();
  });

  it('probes a down upstream with doubling delays up to the cap, and brings it back on the first answer', async () => {
    const clock = new ManualClock();
    let answers = false;
    const { events, make } = upstreams(clock, () => answers);
    const u = make('10.0.0.1');
    u.failed();
    u.failed();
    for (const delay of [500, 1000, 2000]) {
      clock.advance(delay - 1);
      await flush();
      expect(events.filter((e) => e.startsWith('probe 10')).length).toBe([500, 1000, 2000].indexOf(delay));
      clock.advance(1);
      await flush();
    }
    expect(events.filter((e) => e === 'probe failed 10.0.0.1')).toHaveLength(3);
    answers = true;
    clock.advance(4000);
    await flush();
    expect(u.down).toBe(false);
    expect(events.at(-1)).toBe('up 10.0.0.1');
    expect(clock.pending).toBe(0);
  });

  it('a probe that throws is reported and counts as failed: probing goes on, and the upstream comes back', async () => {
    const counted: string[] = [];
    const restore = reportBackgroundFailures(pino({ level: 'silent' }), (task) => counted.push(task));
    try {
      const clock = new ManualClock();
      let broken = true;
      const { events, make } = upstreams(clock, () => {
        if (broken) throw new Error('probe bug');
        return true;
      });
      const u = make('10.0.0.1');
      u.failed();
      u.failed();
      clock.advance(500);
      await flush();
      expect(counted).toEqual(['forward_probe']);
      expect(events.at(-1)).toBe('probe failed 10.0.0.1');
      broken = false;
      clock.advance(1000);
      await flush();
      expect(u.down).toBe(false);
      expect(events.at(-1)).toBe('up 10.0.0.1');
    } finally {
      restore();
    }
  });

  it('caps the probe delay', () => {
    expect([0, 1, 2, 5, 6, 40].map((n) => probeDelay(n, HEALTH))).toEqual([500, 1000, 2000, 16000, 30000, 30000]);
  });

  it('a real answer also brings a down upstream back and stops its probes', () => {
    const clock = new ManualClock();
    const { make } = upstreams(clock, () => false);
    const u = make('10.0.0.1');
    u.failed();
    u.failed();
    u.succeeded(1);
    expect(u.down).toBe(false);
    expect(clock.pending).toBe(0);
  });
});

describe('policies', () => {
  it('sequential keeps the configured order with down upstreams last; random shuffles the healthy; fastest sorts by round trip', () => {
    const clock = new ManualClock();
    const { make } = upstreams(clock, () => false);
    const [a, b, c] = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map(make);
    const order = (policy: 'sequential' | 'random' | 'fastest', random?: () => number) =>
      orderUpstreams([a, b, c], policy, random).map((u) => u.address.host);
    expect(order('sequential')).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    a.failed();
    a.failed();
    expect(order('sequential')).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.1']);
    expect(order('random', () => 0)).toEqual(['10.0.0.3', '10.0.0.2', '10.0.0.1']);
    a.succeeded(1);
    b.succeeded(9);
    expect(order('fastest')).toEqual(['10.0.0.3', '10.0.0.1', '10.0.0.2']);
    c.succeeded(5);
    expect(order('fastest')).toEqual(['10.0.0.1', '10.0.0.3', '10.0.0.2']);
  });
});

describe('config', () => {
  it('rejects a bad upstream or allow entry at load time, naming the key', async () => {
    const { configSchema } = await import('../../src/config/schema.ts');
    const bad = configSchema.safeParse({ forward: { upstreams: ['10.0.0.2', 'dns.example.com'], allow: ['10.0.0.0/40'] } });
    expect(bad.success).toBe(false);
    expect(required(bad.error, 'the parse error').issues.map((i) => i.path.join('.'))).toEqual(['forward.upstreams.1', 'forward.allow.0']);
    expect(configSchema.safeParse({ forward: { upstreams: ['[::1]:5390'], allow: ['::1/128', '10.0.0.1'] } }).success).toBe(true);
  });
});
