// End-to-end: the daemon started as a process, queried with real dig.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addresses, dig } from '../helpers/dig.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { topologyJson } from '../helpers/topology.ts';

describe('platform names over UDP', () => {
  let daemon: RunningDaemon;
  beforeAll(async () => {
    daemon = await startDaemon({
      files: {
        'topology.json': topologyJson([
          { id: 'aaaa-1', ip: '10.0.0.1', index: 0, health: 'running' },
          { id: 'aaaa-2', ip: '10.0.0.2', index: 1, health: 'running' },
        ]),
      },
    });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
  });

  it('answers a group query with every instance, authoritatively', async () => {
    const r = await dig(daemon.dnsPort, 'q-s0.web.default.cf.bosh.');
    expect(r.status).toBe('NOERROR');
    expect(r.flags).toContain('aa');
    expect(addresses(r)).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('answers an unknown name with NXDOMAIN and the SOA', async () => {
    const r = await dig(daemon.dnsPort, 'nope.web.default.cf.bosh.');
    expect(r.status).toBe('NXDOMAIN');
    expect(r.authority[0]?.type).toBe('SOA');
  });
});
