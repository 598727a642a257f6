// The check state machine: the first result decides, then rise/fall consecutive results
// change the state; an instance is running only when every check passes.
import { describe, expect, it } from 'vitest';
import { combine, observe, UNCHECKED, type CheckState } from '../../src/checks/index.ts';

const counts = { rise: 2, fall: 3 };

function run(results: boolean[], from: CheckState = UNCHECKED): string[] {
  let state = from;
  return results.map((passed) => (state = observe(state, passed, counts)).health);
}

describe('observe', () => {
  it('the first result decides at once', () => {
    expect(observe(UNCHECKED, true, counts)).toEqual({ health: 'running', streak: 0 });
    expect(observe(UNCHECKED, false, counts)).toEqual({ health: 'failing', streak: 0 });
  });

  it('a running check turns failing after `fall` consecutive failures, a failing one running after `rise` passes', () => {
    expect(run([true, false, false, false, true, true])).toEqual(['running', 'running', 'running', 'failing', 'failing', 'running']);
  });

  it('a pass in between restarts the count: a flapping check stays as it is', () => {
    expect(run([true, false, false, true, false, false, true, false])).toEqual(Array(8).fill('running'));
    expect(run([false, true, false, true, false, true])).toEqual(Array(6).fill('failing'));
  });

  it('rise 1 / fall 1 follows every result', () => {
    let state = UNCHECKED;
    const seen = [true, false, true].map((passed) => (state = observe(state, passed, { rise: 1, fall: 1 })).health);
    expect(seen).toEqual(['running', 'failing', 'running']);
  });
});

describe('combine', () => {
  it('running only when every check passes; failing when any fails; unchecked before the results are in', () => {
    expect(combine(['running', 'running'])).toBe('running');
    expect(combine(['running', 'failing'])).toBe('failing');
    expect(combine(['unchecked', 'failing'])).toBe('failing');
    expect(combine(['running', 'unchecked'])).toBe('unchecked');
  });
});
