// The schedule shared by the registrar, the reaper and the syncer: run a pass, then the
// next one after the delay the pass asks for. Passes never overlap; a kick during a pass
// runs one more right after it (a change must not wait a whole interval); after stop()
// nothing runs again, even if a late event (a NOTIFY, a file change) kicks it.
import type { Clock, Timer } from '../clock.ts';

export class PassLoop {
  private timer: Timer | null = null;
  private running: Promise<void> | null = null;
  private rerun = false;
  /** Not scheduling by itself: before start() (tests run passes by hand) and after stop(). */
  private stopped = true;
  private closed = false;

  /** `pass` resolves to how long to wait before the next pass, ms. */
  constructor(private readonly clock: Clock, private readonly pass: () => Promise<number>) {}

  start(): void {
    this.stopped = false;
    this.closed = false;
    void this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.closed = true;
    this.timer?.cancel();
    await this.running;
  }

  /** One pass now (what the timer runs too); resolves when it, and any rerun, is done. */
  kick(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running) {
      this.rerun = true;
      return this.running;
    }
    this.running = (async () => {
      let delay: number;
      do {
        this.rerun = false;
        this.timer?.cancel();
        delay = await this.pass();
      } while (this.rerun && !this.stopped);
      if (!this.stopped) this.timer = this.clock.after(delay, () => void this.kick());
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }
}
