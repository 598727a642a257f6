// End-to-end: the topology file rewritten — atomically, in place, twice quickly — while a
// steady stream of queries runs. No query may fail; new answers within 1 s.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addresses, dig } from '../helpers/dig.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { QueryStream, versionTopology, writeAtomically } from './topology-stream.ts';

const NAME = '*.web.default.cf.bosh';

describe('topology file rewritten under query load', () => {
  let daemon: RunningDaemon;
  let stream: QueryStream;

  beforeAll(async () => {
    daemon = await startDaemon({ files: { 'topology.json': versionTopology(1) }, config: { log: { level: 'info' } } });
    stream = new QueryStream(daemon.dnsPort, NAME);
    await stream.settle();
  });
  afterAll(async () => {
    await stream.stop();
    expect(await daemon.stop()).toBe(0);
  });

  it('serves a file replaced by rename within 1 s', async () => {
    const since = performance.now();
    writeAtomically(daemon.dir, 'topology.json', versionTopology(2));
    expect(await stream.until(['10.0.0.2'], since)).toBeLessThan(1000);
  });

  it('serves a file rewritten in place within 1 s', async () => {
    const since = performance.now();
    writeFileSync(join(daemon.dir, 'topology.json'), versionTopology(3));
    expect(await stream.until(['10.0.0.3'], since)).toBeLessThan(1000);
  });

  it('ends on the last of two quick changes', async () => {
    const since = performance.now();
    writeAtomically(daemon.dir, 'topology.json', versionTopology(4));
    writeFileSync(join(daemon.dir, 'topology.json'), versionTopology(5));
    expect(await stream.until(['10.0.0.5'], since)).toBeLessThan(1000);
    await stream.settle();
    expect(stream.samples.at(-1)!.addresses).toEqual(['10.0.0.5']);
    expect(addresses(await dig(daemon.dnsPort, NAME))).toEqual(['10.0.0.5']);
  });

  it('answered every query of the stream', async () => {
    await stream.settle();
    expect(stream.samples.length).toBeGreaterThan(100);
    expect(stream.failures()).toEqual([]);
  });
});
