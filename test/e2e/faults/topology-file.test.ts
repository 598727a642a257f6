// Fault: the topology file corrupted, truncated, of the wrong shape and deleted under a
// steady load of queries. Each leaves the last good answers in service (dig answers,
// /ready 200 with the error, the failure counted in /metrics); re-creating or renaming a
// good file is picked up. Every query is answered with the version in service — the old
// or the new one while a good file is being picked up — and the records check never
// finds the record missing.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addresses, dig } from '../../helpers/dig.ts';
import { startDaemon, waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import { required } from '../../helpers/required.ts';
import { reloadFailures, versionTopology, writeAtomically } from '../topology-stream.ts';
import { daemonRss, expectNothingLost, reportSeen, Versions, Watch, type Seen } from './report.ts';

const NAME = '*.web.default.cf.bosh';
/** The one address versionTopology(v) answers NAME with. */
const addressOf = (version: number) => `10.0.0.${version}`;

interface Ready {
  ready: boolean;
  modules: { topology: { ready: boolean; detail: { version?: number; lastError?: string | null; reason?: string } } };
}

describe('a broken topology file leaves the last good one in service', () => {
  let daemon: RunningDaemon;
  let file: string;
  const versions = new Versions(1);
  let watch: Watch | null = null;

  const ready = async (): Promise<{ status: number; body: Ready }> => {
    const res = await daemon.admin('/ready');
    return { status: res.status, body: (await res.json()) as Ready };
  };

  /** Breaks the file, waits until the daemon has counted the rejection, checks it still serves the last good version. */
  async function breakWith(breakFile: () => void, error: RegExp): Promise<void> {
    const before = await reloadFailures(daemon);
    breakFile();
    await waitFor(async () => (await reloadFailures(daemon)) > before, 20_000, 'the rejection to be counted');
    expect(addresses(await dig(daemon.dnsPort, NAME))).toEqual([addressOf(versions.newest)]);
    const r = await ready();
    expect(r.status).toBe(200);
    expect(r.body.modules.topology.detail.version).toBe(versions.newest);
    expect(r.body.modules.topology.detail.lastError).toMatch(error);
  }

  /** Writes good version `version` with `write` and waits until DNS answers from it. */
  async function pickUp(version: number, write: (text: string) => void): Promise<void> {
    versions.wrote(version);
    write(versionTopology(version));
    await waitFor(async () => addresses(await dig(daemon.dnsPort, NAME)).join() === addressOf(version), 20_000, `version ${version} to be answered`);
    versions.served(version);
  }

  beforeAll(async () => {
    daemon = await startDaemon({ files: { 'topology.json': versionTopology(1) } });
    file = join(daemon.dir, 'topology.json');
    watch = new Watch({
      daemons: [daemon],
      expected: {
        names: () => [NAME],
        allowed: (_name, sentAt, answeredAt) => versions.between(sentAt, answeredAt).map((v) => [addressOf(v)]),
      },
      // Dense: each break lasts a fraction of a second.
      load: { intervalMs: 2 },
    });
  });
  afterAll(async () => {
    await watch?.stop();
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
    await pickUp(2, (text) => writeFileSync(file, text));
    expect((await ready()).body.modules.topology.detail).toMatchObject({ version: 2, lastError: null });
  });

  it('picks up a file renamed over the broken one', async () => {
    writeFileSync(file, 'garbage');
    await waitFor(async () => (await ready()).body.modules.topology.detail.lastError !== null, 20_000, 'the garbage to be rejected');
    await pickUp(3, (text) => writeAtomically(daemon.dir, 'topology.json', text));
  });

  it('answered every query with the version in service while the file was broken, and never lacked the record', async () => {
    const seen: Seen = await required(watch, 'the load started before the breaks').stop();
    watch = null;
    reportSeen('topology file corrupt, truncated, wrong shape, deleted', seen, daemonRss(daemon));
    expectNothingLost(seen);
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
      expect(await reloadFailures(daemon)).toBe(1);
      writeAtomically(daemon.dir, 'topology.json', versionTopology(1));
      await waitFor(async () => (await daemon.admin('/ready')).status === 200, 20_000, 'ready');
      expect(addresses(await dig(daemon.dnsPort, NAME))).toEqual(['10.0.0.1']);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });
});
