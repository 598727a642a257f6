// Test inputs for the presence tests: registrations, a registration source driven by the
// test, and a manual clock whose timers fire only when the test advances time.
import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import type { Registration, RegistrationSource } from '../../src/registrations/types.ts';
import type { Clock, Timer } from '../../src/forward/index.ts';

export const silentLogger = pino({ level: 'silent' });

export function registration(id: string, over: Partial<Registration> = {}): Registration {
  return {
    id, group: 'web', network: 'default', deployment: 'cf', domain: 'bosh', az: 'z1', index: 0, ip: '10.0.0.1',
    numId: null, groupIds: null, azId: null, networkId: null, agentId: null, health: 'running', ports: {}, routes: [],
    app: null, isolationSegment: null, tags: {}, ...over,
  };
}

/** The registrations of one node, as the test says they are. */
export class TestSource extends EventEmitter<{ change: [Registration[]] }> implements RegistrationSource {
  private items: Registration[] = [];
  list(): Registration[] {
    return this.items;
  }
  set(items: Registration[]): void {
    this.items = items;
    this.emit('change', items);
  }
}

/** Time moves only when the test says so; scheduled passes never fire (the test runs them). */
export class ManualClock implements Clock {
  private t = 0;
  readonly scheduled: number[] = [];

  now(): number {
    return this.t;
  }

  after(ms: number): Timer {
    this.scheduled.push(ms);
    return { cancel: () => undefined };
  }

  advance(ms: number): void {
    this.t += ms;
  }
}
