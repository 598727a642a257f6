// End-to-end: the topology file rewritten — atomically, in place, twice quickly — while a
// steady stream of queries runs. No query may fail; each new file is picked up (waited
// for with a deadline a loaded machine meets: how fast is bench/churn.ts's to measure).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addresses, dig } from '../helpers/dig.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { required } from '../helpers/required.ts';
import { QueryStream, versionTopology, writeAtomically } from './topology-stream.ts';

const NAME = '*.web.default.cf.bosh';
/** How long a change may take to be picked up before the test gives up: generous for a loaded 2-core machine. */
const PICKED_UP_MS = 20_000;

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

  it('serves a file replaced by rename', async () => {
    const since = performance.now();
    writeAtomically(daemon.dir, 'topology.json', versionTopology(2));
    await stream.until(['10.0.0.2'], since, PICKED_UP_MS);
  });

  it('serves a file rewritten in place', async () => {
    const since = performance.now();
    writeFileSync(join(daemon.dir, 'topology.json'), versionTopology(3));
    await stream.until(['10.0.0.3'], since, PICKED_UP_MS);
  });

  it('ends on the last of two quick changes', async () => {
    const since = performance.now();
    writeAtomically(daemon.dir, 'topology.json', versionTopology(4));
    writeFileSync(join(daemon.dir, 'topology.json'), versionTopology(5));
    await stream.until(['10.0.0.5'], since, PICKED_UP_MS);
    await stream.settle();
    expect(required(stream.samples.at(-1), 'a sample').addresses).toEqual(['10.0.0.5']);
    expect(addresses(await dig(daemon.dnsPort, NAME))).toEqual(['10.0.0.5']);
  });

  it('answered every query of the stream', async () => {
    await stream.settle();
    expect(stream.samples.length).toBeGreaterThan(100);
    expect(stream.failures()).toEqual([]);
  });
});
