// The embedded default: what `npm start` runs (config/default.yaml, no database.url →
// PGlite) registers config/instances.d/example.yaml, syncs it to the topology file and
// answers it over DNS — on a machine with no PostgreSQL server. Only the ports and the
// data locations are moved to a temporary directory so the run leaves the repo clean.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dig } from '../helpers/dig.ts';
import { DAEMON_ENTRY, tempDir, waitFor } from '../helpers/daemon.ts';
import { syncedTopology } from '../helpers/topology.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const dir = tempDir('presence-embedded-');
const running: Array<() => void> = [];

afterAll(() => running.forEach((kill) => kill()));

function npmStart(): Promise<{ dns: number; admin: number; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [DAEMON_ENTRY, 'start',
    '--set', 'dns.listen=[{"address":"127.0.0.1","port":0}]', '--set', 'admin.port=0', '--set', 'forward.enabled=false',
    '--set', `database.embedded_dir=${join(dir, 'pglite')}`, '--set', `topology.file=${join(dir, 'topology.json')}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(() => child.kill('SIGKILL'));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return new Promise((resolvePorts, reject) => {
    let pending = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.includes('"presence-dns started"')) continue;
        const entry = JSON.parse(line) as { dns: Array<{ port: number }>; admin: string };
        resolvePorts({
          dns: entry.dns[0].port,
          admin: Number(entry.admin.split(':').pop()),
          stop: async () => {
            child.kill('SIGTERM');
            return exited;
          },
        });
      }
    });
    void exited.then((code) => reject(new Error(`exited with ${code}: ${stderr}`)));
  });
}

describe('npm start (embedded PGlite)', () => {
  it('answers the example instances from the database-synced file, and again after a restart', async () => {
    const first = await npmStart();
    const name = 'q-s0.web.default.cf.bosh';
    await waitFor(async () => (await dig(first.dns, name)).answer.length === 2, 30_000, 'the example instances to be answered');
    expect((await dig(first.dns, name)).answer.map((a) => a.data).sort()).toEqual(['10.0.1.10', '10.0.2.10']);
    // The snapshot the syncer owns, plus the journal of changes since it (the first
    // snapshot may predate the registrar's first write).
    const snapshot = JSON.parse(readFileSync(join(dir, 'topology.json'), 'utf8')) as { source: string };
    expect(snapshot.source).toBe('presence-dns sync');
    const file = syncedTopology(join(dir, 'topology.json'));
    expect(file.version).toBeGreaterThan(0);
    expect(file.instances).toHaveLength(4);
    const metrics = await (await fetch(`http://127.0.0.1:${first.admin}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^presence_dns_topology_revision ${file.version}$`, 'm'));
    expect(await first.stop()).toBe(0);

    // The reaper lock was released on SIGTERM and the data persisted: a restart answers at once.
    const second = await npmStart();
    expect((await dig(second.dns, name)).answer).toHaveLength(2);
    const holder = async () => ((await (await fetch(`http://127.0.0.1:${second.admin}/v1/reaper`)).json()) as { reaper: { holder: boolean } }).reaper.holder;
    await waitFor(holder, 20_000, 'the restarted node to hold the reaper lock');
    expect(await second.stop()).toBe(0);
  });
});
