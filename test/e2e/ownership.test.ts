// The syncer writes only a topology file it owns (docs/topology-file.md). Pointed at an unmodified
// BOSH records.json with the embedded database and the default sync on — the set-up that
// erased the file in the first version — the daemon starts, serves the file, says plainly
// that it will not write it, and leaves its bytes alone. The same for a file synced from
// another presence database.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { addresses, dig } from '../helpers/dig.ts';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.ts';
import { metric } from '../presence/daemons.ts';

const RECORDS_JSON = readFileSync(new URL('../control/fixtures/bosh-records.json', import.meta.url), 'utf8');
const API_0 = 'a9a5d7c4-5b5c-4d8a-9c4f-2a1f1b2c3d01';

const daemons: RunningDaemon[] = [];
afterEach(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
});

/** A daemon with the defaults of `npm start`: embedded database, syncer, registrar and reaper on. */
async function syncingDaemon(files: Record<string, string>, file: string): Promise<RunningDaemon> {
  const daemon = await startDaemon({
    files: { ...files, 'instances.d/.keep': '' },
    config: {
      topology: { file },
      database: { embedded_dir: 'pglite' },
      sync: { enabled: true, interval: 0.2 },
      registrar: { enabled: true, cell_id: 'own-test', ttl: 3 },
      reaper: { enabled: true },
      registrations: { dir: 'instances.d' },
    },
  });
  daemons.push(daemon);
  return daemon;
}

interface Ready {
  modules: { topology: { detail: { refused: string | null; version: number } }; presence: { detail: { refused: string | null; dbUp: boolean | null } } };
}

const ready = async (d: RunningDaemon) => (await (await d.admin('/ready')).json()) as Ready;

describe('a topology file someone else wrote', () => {
  it('a BOSH records.json is served and never overwritten by the syncer', async () => {
    const daemon = await syncingDaemon({ 'records.json': RECORDS_JSON }, 'records.json');
    // The syncer has reached the database and decided: it refuses, naming the file.
    await waitFor(async () => (await ready(daemon)).modules.presence.detail.refused !== null, 20_000, 'the syncer to refuse');
    const status = await ready(daemon);
    expect(status.modules.presence.detail.refused).toContain(join(daemon.dir, 'records.json'));
    expect(status.modules.presence.detail.refused).toContain('BOSH');
    expect(status.modules.topology.detail.refused).toBe(status.modules.presence.detail.refused);
    expect(await metric(daemon, 'presence_dns_sync_refused')).toBe(1);
    expect(daemon.logs.some((l) => l.includes('"level":50') && l.includes('will not write'))).toBe(true);
    // Well past the 3 s in which the first version erased it: the bytes are the operator's.
    await new Promise((r) => setTimeout(r, 3000));
    expect(readFileSync(join(daemon.dir, 'records.json'), 'utf8')).toBe(RECORDS_JSON);
    expect(addresses(await dig(daemon.dnsPort, `${API_0}.api.default.cf.bosh.`))).toEqual(['10.10.0.11']);
  });

  it('a file synced from another presence database is served and never overwritten', async () => {
    const foreign = JSON.stringify({
      version: 42, source: 'presence-dns sync', cluster: '00000000-0000-4000-8000-0000000000aa',
      record_keys: ['id', 'instance_group', 'network', 'deployment', 'ip', 'domain'],
      record_infos: [['x-1', 'web', 'default', 'cf', '10.60.0.1', 'bosh']],
    });
    const daemon = await syncingDaemon({ 'topology.json': foreign }, 'topology.json');
    await waitFor(async () => (await ready(daemon)).modules.presence.detail.refused !== null, 20_000, 'the syncer to refuse');
    expect((await ready(daemon)).modules.presence.detail.refused).toContain('another presence database');
    await new Promise((r) => setTimeout(r, 1000));
    expect(readFileSync(join(daemon.dir, 'topology.json'), 'utf8')).toBe(foreign);
    expect(addresses(await dig(daemon.dnsPort, 'x-1.web.default.cf.bosh.'))).toEqual(['10.60.0.1']);
  });
});
