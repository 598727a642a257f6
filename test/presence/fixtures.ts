// Test inputs for the presence tests: registrations, a registration source driven by the
// test, and a manual clock whose timers fire only when the test advances time.
import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import type { Registration, RegistrationSource } from '../../src/registrations/types.ts';

export const silentLogger = pino({ level: 'silent' });

/** A TopologyState's `post` in a test with no DNS thread. */
export function unposted(): void {
  // The test reads the state itself; nothing is sent anywhere.
}

export function registration(id: string, over: Partial<Registration> = {}): Registration {
  return {
    id, group: 'web', network: 'default', deployment: 'cf', domain: 'bosh', az: 'z1', index: 0, ip: '10.0.0.1',
    numId: null, groupIds: null, azId: null, networkId: null, agentId: null, health: 'running', ports: {}, routes: [],
    app: null, isolationSegment: null, tags: {}, checks: [], ...over,
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
