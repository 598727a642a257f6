// Time for the registrar, reaper and syncer: a monotonic now() and one-shot timers, so
// unit tests drive heartbeats, TTLs and backoff exactly instead of sleeping.
// (Same shape as the forwarder's Clock; kept here so presence does not reach into it.)

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds on a monotonic scale (only differences matter). */
  now(): number;
  /** Runs `fn` once after `ms`; the timer never keeps the process alive. */
  after(ms: number, fn: () => void): Timer;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  after(ms, fn) {
    const handle = setTimeout(fn, ms);
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};
