// Fault: the topology file corrupted, truncated and deleted under a query stream. Each
// leaves the last good answers in service (dig answers, /ready 200 with the error,
// the failure counted in /metrics); re-creating or renaming a good file is picked up.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addresses, dig } from '../../helpers/dig.ts';
import { startDaemon, waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import { QueryStream, reloadFailures, versionTopology, writeAtomically } from '../topology-stream.ts';
import { daemonRss, report } from './report.ts';

const NAME = '*.web.default.cf.bosh';

interface Ready {
  ready: boolean;
  modules: { topology: { ready: boolean; detail: { version?: number; lastError?: string | null; reason?: string } } };
}

describe('a broken topology file leaves the last good one in service', () => {
  let daemon: RunningDaemon;
  let stream: QueryStream;
  let file: string;

  const ready = async (): Promise<{ status: number; body: Ready }> => {
    const res = await daemon.admin('/ready');
    return { status: res.status, body: (await res.json()) as Ready };
  };

  /** Breaks the file, waits until the daemon has counted the rejection, checks it still serves v1. */
  async function breakWith(breakFile: () => void, error: RegExp): Promise<void> {
    const before = await reloadFailures(daemon.admin);
    breakFile();
    await waitFor(async () => (await reloadFailures(daemon.admin)) > before, 5000, 'the rejection to be counted');
    expect(addresses(await dig(daemon.dnsPort, NAME))).toEqual(['10.0.0.1']);
    const r = await ready();
    expect(r.status).toBe(200);
    expect(r.body.modules.topology.detail.version).toBe(1);
    expect(r.body.modules.topology.detail.lastError).toMatch(error);
    await stream.settle();
  }

  beforeAll(async () => {
    daemon = await startDaemon({ files: { 'topology.json': versionTopology(1) } });
    file = join(daemon.dir, 'topology.json');
    stream = new QueryStream(daemon.dnsPort, NAME);
    await stream.settle();
  });
  afterAll(async () => {
    await stream.stop();
    expect(await daemon.stop()).toBe(0);
  });

  it('a corrupt file', async () => {
    await breakWith(() => writeFileSync(file, '{"version": 2, "record_keys": ["id", '), /topology\.json rejected: not valid JSON/);
  });

  it('a truncated file', async () => {
    const good = versionTopology(2);
    await breakWith(() => writeFileSync(file, good.slice(0, good.length - 10)), /not valid JSON/);
  });

  it('a file of the wrong shape', async () => {
    await breakWith(() => writeFileSync(file, '{"version": 2}'), /record_keys must be a list/);
  });

  it('a deleted file', async () => {
    await breakWith(() => rmSync(file), /cannot read topology file .*topology\.json: ENOENT/);
    expect(daemon.logs.some((l) => l.includes('keeping the last good topology') && l.includes('"level":50'))).toBe(true);
  });

  it('picks up the file re-created after the delete', async () => {
    const since = performance.now();
    writeFileSync(file, versionTopology(2));
    expect(await stream.until(['10.0.0.2'], since)).toBeLessThan(1000);
    expect((await ready()).body.modules.topology.detail).toMatchObject({ version: 2, lastError: null });
  });

  it('picks up a file renamed over the broken one', async () => {
    writeFileSync(file, 'garbage');
    await waitFor(async () => (await ready()).body.modules.topology.detail.lastError !== null, 5000, 'the garbage to be rejected');
    const since = performance.now();
    writeAtomically(daemon.dir, 'topology.json', versionTopology(3));
    expect(await stream.until(['10.0.0.3'], since)).toBeLessThan(1000);
  });

  it('answered every query while the file was broken', async () => {
    await stream.settle();
    report({
      scenario: 'topology file corrupt, truncated, wrong shape, deleted', sent: stream.samples.length, failed: stream.failures().length,
      recordsLost: addresses(await dig(daemon.dnsPort, NAME)).join() === '10.0.0.3' ? 0 : 1, rssBytes: daemonRss(daemon),
    });
    expect(stream.failures()).toEqual([]);
  });
});

describe('a daemon started without a usable topology', () => {
  it('is alive but not ready, with the reason, until a good file appears', async () => {
    const daemon = await startDaemon({ files: { 'topology.json': '{"broken":' }, waitReady: false });
    try {
      expect((await daemon.admin('/health')).status).toBe(200);
      const res = await daemon.admin('/ready');
      expect(res.status).toBe(503);
      const body = (await res.json()) as Ready;
      expect(body.modules.topology.detail.reason).toMatch(/rejected: not valid JSON/);
      expect(await reloadFailures(daemon.admin)).toBe(1);
      writeAtomically(daemon.dir, 'topology.json', versionTopology(1));
      await waitFor(async () => (await daemon.admin('/ready')).status === 200, 5000, 'ready');
      expect(addresses(await dig(daemon.dnsPort, NAME))).toEqual(['10.0.0.1']);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });
});
