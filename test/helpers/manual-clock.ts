// A clock the test moves by hand: timers fire only inside advance(), in time order —
// or never, for tests that run each scheduled pass themselves (`runTimers: false`).
import type { Clock, Timer } from '../../src/clock.ts';

export class ManualClock implements Clock {
  private time: number;
  private timers: Array<{ at: number; fn: () => void; seq: number }> = [];
  private seq = 0;
  private readonly runTimers: boolean;
  /** Every delay passed to after(), in order: what the code under test scheduled. */
  readonly scheduled: number[] = [];

  constructor(options: { start?: number; runTimers?: boolean } = {}) {
    this.time = options.start ?? 1_000_000;
    this.runTimers = options.runTimers ?? true;
  }

  now(): number {
    return this.time;
  }

  after(ms: number, fn: () => void): Timer {
    this.scheduled.push(ms);
    if (!this.runTimers) return { cancel: () => undefined };
    const timer = { at: this.time + ms, fn, seq: this.seq++ };
    this.timers.push(timer);
    return { cancel: () => (this.timers = this.timers.filter((t) => t !== timer)) };
  }

  /** Moves time forward, firing due timers (and timers they set that fall due) in order. */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at || a.seq - b.seq).at(0);
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = due.at;
      due.fn();
    }
    this.time = until;
  }

  get pending(): number {
    return this.timers.length;
  }
}
