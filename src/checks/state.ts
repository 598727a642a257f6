// The state machine of one health check, and how an instance's checks add up to its
// health. Pure: no I/O, no time. rise/fall (HAProxy's terms) bound how often a check's
// state can change, so a flapping service cannot turn into a stream of database writes.
import type { Health } from '../image/instance.ts';

export interface CheckState {
  /** `unchecked` until the first result; then `running` or `failing`. */
  health: Health;
  /** Consecutive results that disagree with `health`, toward a change. */
  streak: number;
}

export const UNCHECKED: CheckState = { health: 'unchecked', streak: 0 };

/**
 * The state after one result. The first result decides at once (a fresh instance is
 * classified within one interval); afterwards `rise` consecutive passes turn a failing
 * check running and `fall` consecutive failures turn a running check failing.
 */
export function observe(state: CheckState, passed: boolean, counts: { rise: number; fall: number }): CheckState {
  const measured: Health = passed ? 'running' : 'failing';
  if (state.health === 'unchecked' || state.health === measured) return { health: measured, streak: 0 };
  const streak = state.streak + 1;
  return streak >= (passed ? counts.rise : counts.fall) ? { health: measured, streak: 0 } : { health: state.health, streak };
}

/** An instance is running only when every check passes; failing when any fails; unchecked otherwise. */
export function combine(states: readonly Health[]): Health {
  if (states.includes('failing')) return 'failing';
  if (states.includes('unchecked')) return 'unchecked';
  return 'running';
}
