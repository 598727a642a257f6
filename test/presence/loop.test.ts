// The pass loop on a manual clock: a pass that throws is reported (logged with its task,
// counted) and retried with capped exponential backoff until one succeeds; the loop
// never stops by itself and never leaves a rejection behind.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { PassLoop } from '../../src/presence/loop.ts';
import { reportBackgroundFailures } from '../../src/util/background.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

const flush = () => new Promise((resolve) => setImmediate(resolve));
let restore: (() => void) | null = null;
afterEach(() => restore?.());

function reported(): { logs: Array<{ task: string; err: string; msg: string }>; counted: string[] } {
  const logs: Array<{ task: string; err: string; msg: string }> = [];
  const counted: string[] = [];
  restore = reportBackgroundFailures(pino({ level: 'error' }, { write: (line: string) => logs.push(JSON.parse(line) as (typeof logs)[number]) }), (task) => counted.push(task));
  return { logs, counted };
}

describe('PassLoop', () => {
  it('reports a pass that throws and retries it with doubling delays, then resumes its own schedule', async () => {
    const { logs, counted } = reported();
    const clock = new ManualClock();
    let calls = 0;
    const loop = new PassLoop(clock, () => {
      calls++;
      if (calls <= 4) return Promise.reject(new Error(`broken pass ${calls}`));
      return Promise.resolve(5000);
    }, { name: 'syncer', retryBaseMs: 100, retryCapMs: 400, random: () => 1 });
    loop.start();
    await flush();
    expect(calls).toBe(1);
    for (const [delay, total] of [[100, 2], [200, 3], [400, 4], [400, 5]]) {
      clock.advance(delay - 1);
      await flush();
      expect(calls).toBe(total - 1);
      clock.advance(1);
      await flush();
      expect(calls).toBe(total);
    }
    // Succeeded: back on the pass's own delay.
    expect(clock.scheduled.slice(-1)).toEqual([5000]);
    expect(counted).toEqual(['syncer', 'syncer', 'syncer', 'syncer']);
    expect(logs.map((l) => [l.task, l.err])).toEqual([1, 2, 3, 4].map((n) => ['syncer', `broken pass ${n}`]));
    expect(logs[0].msg).toBe('background work failed: syncer');
    await loop.stop();
  });

  it('a kick during a failing pass neither rejects nor stops the loop', async () => {
    reported();
    const clock = new ManualClock();
    let calls = 0;
    const loop = new PassLoop(clock, () => {
      calls++;
      return Promise.reject(new Error('always'));
    }, { name: 'reaper', retryBaseMs: 100, random: () => 1 });
    loop.start();
    await expect(loop.kick()).resolves.toBeUndefined();
    await flush();
    expect(calls).toBe(2);
    clock.advance(10_000);
    await flush();
    expect(calls).toBeGreaterThan(2);
    await loop.stop();
    const after = calls;
    clock.advance(60_000);
    await flush();
    expect(calls).toBe(after);
  });
});
