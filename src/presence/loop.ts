// The schedule shared by the registrar, the reaper and the syncer: run a pass, then the
// next one after the delay the pass asks for. Passes never overlap; a kick during a pass
// runs one more right after it (a change must not wait a whole interval); after stop()
// nothing runs again, even if a late event (a NOTIFY, a file change) kicks it. A pass
// that throws is reported (logged and counted, util/background.ts) and the loop goes on:
// it retries with capped exponential backoff until a pass succeeds again.
import type { Clock, Timer } from '../clock.ts';
import { backgroundFailed } from '../util/background.ts';
import { backoffDelay } from './decisions.ts';

export interface PassLoopOptions {
  /** The task a failure is reported under (e.g. "registrar"). */
  name: string;
  /** First retry after a pass that threw, ms; doubles per failure in a row. */
  retryBaseMs?: number;
  /** Longest wait between retries, ms. */
  retryCapMs?: number;
  random?: () => number;
}

const RETRY_BASE_MS = 250;
const RETRY_CAP_MS = 30_000;

export class PassLoop {
  private timer: Timer | null = null;
  private running: Promise<void> | null = null;
  private rerun = false;
  /** Not scheduling by itself: before start() (tests run passes by hand) and after stop(). */
  private stopped = true;
  private closed = false;
  /** Passes in a row that threw (0 after a pass that did not). */
  private failuresInARow = 0;

  /** `pass` resolves to how long to wait before the next pass, ms. */
  constructor(private readonly clock: Clock, private readonly pass: () => Promise<number>, private readonly options: PassLoopOptions) {}

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

  /** One pass now (what the timer runs too); resolves when it, and any rerun, is done. Never rejects. */
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
        delay = await this.attempt();
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- kick() sets rerun while the pass is awaited
      } while (this.rerun && !this.stopped);
      if (!this.stopped) this.timer = this.clock.after(delay, () => void this.kick());
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** One pass; a throw is reported and turns into the backoff delay. */
  private async attempt(): Promise<number> {
    try {
      const delay = await this.pass();
      this.failuresInARow = 0;
      return delay;
    } catch (err) {
      this.failuresInARow++;
      backgroundFailed(this.options.name, err);
      return backoffDelay(this.failuresInARow, this.options.retryBaseMs ?? RETRY_BASE_MS, this.options.retryCapMs ?? RETRY_CAP_MS, this.options.random);
    }
  }
}
