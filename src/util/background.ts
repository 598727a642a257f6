// Work nobody awaits — a scheduled pass, a prefetch, a health probe, a reconnect — must
// still have its failures seen: each is reported with the name of its task (logged and
// counted in `presence_dns_background_errors_total{task}` once the daemon has wired a
// reporter), never left as an unhandled rejection that ends the process, never
// swallowed. The process-level handlers report whatever slipped through all the same.
import type { Logger } from '../log.ts';

/** Takes one failure of background work. */
export type FailureReporter = (task: string, err: unknown) => void;

/** Until a reporter is wired (unit tests, a thread without one): one JSON line on stderr. */
const toStderr: FailureReporter = (task, err) => {
  const error = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(`${JSON.stringify({ level: 50, task, err: error.message, stack: error.stack, msg: 'background work failed' })}\n`);
};

let report: FailureReporter = toStderr;

/** Reports a failure of background work (logged and counted). Never throws. */
export function backgroundFailed(task: string, err: unknown): void {
  try {
    report(task, err);
  } catch {
    toStderr(task, err);
  }
}

function uncounted(): void {
  // Without a counter (tests, tools), failures are only logged.
}

/** Lets `work` run unawaited; a rejection is reported as a failure of `task`. */
export function inBackground(task: string, work: Promise<unknown>): void {
  work.catch((err: unknown) => backgroundFailed(task, err));
}

/**
 * Reports background failures to `logger` (at error, with the stack) and to `count`
 * (a metric). Returns a function that puts the previous reporter back.
 */
export function reportBackgroundFailures(logger: Logger, count: (task: string) => void = uncounted): () => void {
  const previous = report;
  report = (task, err) => {
    count(task);
    const error = err instanceof Error ? err : new Error(String(err));
    logger.error({ task, err: error.message, stack: error.stack }, `background work failed: ${task}`);
  };
  return () => {
    report = previous;
  };
}

/**
 * Process-level handlers for what slipped through every other catch: an unhandled
 * rejection or an uncaught exception is reported (logged with its stack, counted) and the
 * daemon keeps serving — a DNS server that exits on one stray error takes every name
 * down with it. Returns a function that removes the handlers.
 */
export function guardProcess(): () => void {
  const rejection = (reason: unknown) => backgroundFailed('unhandled_rejection', reason);
  const exception = (err: Error) => backgroundFailed('uncaught_exception', err);
  process.on('unhandledRejection', rejection);
  process.on('uncaughtException', exception);
  return () => {
    process.off('unhandledRejection', rejection);
    process.off('uncaughtException', exception);
  };
}
