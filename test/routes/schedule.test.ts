import { describe, expect, it } from 'vitest';
import { GreetingError, intervalOutlivesPrune, parseRouterGreeting, startJitterMs } from '../../src/routes/schedule.ts';

describe('parseRouterGreeting', () => {
  it('reads gorouter’s router.start body', () => {
    const text = JSON.stringify({ id: 'r1', hosts: ['10.0.0.5'], minimumRegisterIntervalInSeconds: 20, pruneThresholdInSeconds: 120 });
    expect(parseRouterGreeting(text)).toEqual({ id: 'r1', intervalSeconds: 20, pruneThresholdSeconds: 120 });
  });

  it('missing fields mean "keep what you have"', () => {
    expect(parseRouterGreeting('{}')).toEqual({ id: null, intervalSeconds: null, pruneThresholdSeconds: null });
  });

  it.each([
    ['not json', /not JSON/],
    ['[1]', /not a JSON object/],
    ['{"minimumRegisterIntervalInSeconds":0}', /minimumRegisterIntervalInSeconds must be a positive number/],
    ['{"minimumRegisterIntervalInSeconds":"20"}', /minimumRegisterIntervalInSeconds must be a positive number/],
    ['{"pruneThresholdInSeconds":-1}', /pruneThresholdInSeconds must be a positive number/],
  ])('rejects %s with a reason', (text, reason) => {
    expect(() => parseRouterGreeting(text)).toThrow(reason);
    expect(() => parseRouterGreeting(text)).toThrow(GreetingError);
  });
});

describe('startJitterMs', () => {
  it('stays in [0, 0.2 × interval)', () => {
    expect(startJitterMs(20, () => 0)).toBe(0);
    expect(startJitterMs(20, () => 0.5)).toBe(2000);
    expect(startJitterMs(20, () => 0.999999)).toBeLessThan(4000);
    expect(startJitterMs(20, () => 0.999999)).toBeGreaterThan(3990);
  });
});

describe('intervalOutlivesPrune', () => {
  it('flags an interval at or past the prune threshold', () => {
    expect(intervalOutlivesPrune(20, 120)).toBe(false);
    expect(intervalOutlivesPrune(120, 120)).toBe(true);
    expect(intervalOutlivesPrune(20, null)).toBe(false);
  });
});
