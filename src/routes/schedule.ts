// When to (re-)publish: gorouter's `router.start` / greet-reply parameters and the
// jitter after a router (re)start. Pure: the random source is passed in.

/** gorouter's BOSH default `minimumRegisterIntervalInSeconds`, used until a router answers. */
export const DEFAULT_REGISTER_INTERVAL_S = 20;
/** gorouter's default `pruneThresholdInSeconds`. */
export const DEFAULT_PRUNE_THRESHOLD_S = 120;

export interface RouterGreeting {
  /** gorouter's id, for logs. */
  id: string | null;
  /** How often every route must be re-published; null when the message did not say. */
  intervalSeconds: number | null;
  /** After this long without a register gorouter drops a route; null when not said. */
  pruneThresholdSeconds: number | null;
}

export class GreetingError extends Error {
  readonly code = 'ROUTER_GREETING_INVALID';
}

function positiveSeconds(value: unknown, field: string): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new GreetingError(`${field} must be a positive number of seconds, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Parses the body of a `router.start` message or a `router.greet` reply. */
export function parseRouterGreeting(text: string): RouterGreeting {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new GreetingError(`not JSON: ${text.slice(0, 200)}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new GreetingError('not a JSON object');
  const fields = doc as Record<string, unknown>;
  return {
    id: typeof fields.id === 'string' ? fields.id : null,
    intervalSeconds: positiveSeconds(fields.minimumRegisterIntervalInSeconds, 'minimumRegisterIntervalInSeconds'),
    pruneThresholdSeconds: positiveSeconds(fields.pruneThresholdInSeconds, 'pruneThresholdInSeconds'),
  };
}

/**
 * Delay before re-publishing after a `router.start`: uniform in [0, 0.2 × interval), so
 * the cells of a large deployment do not all answer a restarted router in the same instant.
 */
export function startJitterMs(intervalSeconds: number, random: () => number): number {
  return Math.floor(random() * 0.2 * intervalSeconds * 1000);
}

/**
 * A register interval at or beyond the prune threshold lets gorouter drop live routes
 * between two registers; the operator should hear about it.
 */
export function intervalOutlivesPrune(intervalSeconds: number, pruneThresholdSeconds: number | null): boolean {
  return pruneThresholdSeconds !== null && intervalSeconds >= pruneThresholdSeconds;
}
