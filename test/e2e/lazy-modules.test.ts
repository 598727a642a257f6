// A DNS-only daemon loads none of the heavy packages it does not use (a
// sidecar never loads PGlite, `pg` or NATS); switched on by config, they are loaded.
// What was loaded is recorded by a module-resolution hook in every thread of the
// spawned daemon (test/helpers/record-modules.ts).
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dig } from '../helpers/dig.ts';
import { startDaemon, tempDir, type DaemonOptions, type RunningDaemon } from '../helpers/daemon.ts';
import { freePort, testDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { topologyJson } from '../helpers/topology.ts';

const HOOK = resolve(import.meta.dirname, '../helpers/record-modules.ts');
// dns2 is the CLI's `lookup` client only: the daemon never loads it.
const HEAVY = ['@electric-sql/pglite', 'pg', 'nats', 'dns2'];
const TOPOLOGY = topologyJson([{ id: 'web-0', ip: '10.0.0.10' }]);
const daemons: RunningDaemon[] = [];
let database: TestDatabase | null = null;

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  await database?.drop();
});

async function packagesLoaded(options: DaemonOptions): Promise<{ daemon: RunningDaemon; packages: Set<string> }> {
  const log = join(tempDir('presence-modules-'), 'modules.log');
  const daemon = await startDaemon({ ...options, nodeArgs: ['--import', HOOK], env: { RECORD_MODULES_TO: log } });
  daemons.push(daemon);
  return { daemon, packages: new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean)) };
}

describe('modules loaded per config', () => {
  it('a DNS-only daemon answers without loading PGlite, pg or nats', async () => {
    const { daemon, packages } = await packagesLoaded({ files: { 'topology.json': TOPOLOGY } });
    expect((await dig(daemon.dnsPort, 'web-0.web.default.cf.bosh')).answer.map((a) => a.data)).toEqual(['10.0.0.10']);
    // The hook saw the packages the daemon does use, so an empty log cannot pass.
    expect(packages).toContain('pino');
    for (const pkg of HEAVY) expect(packages, pkg).not.toContain(pkg);
  });

  it('a node on a PostgreSQL server with routes loads pg and nats, still not PGlite', async () => {
    database = await testDatabase();
    const { packages } = await packagesLoaded({
      files: { 'topology.json': TOPOLOGY, 'instances.d/.keep': '' },
      config: {
        database: { url: database.url },
        sync: { enabled: true }, registrar: { enabled: true, cell_id: 'lazy-1' },
        registrations: { dir: 'instances.d' },
        // Nothing listens there: the emitter keeps reconnecting, which is enough to load nats.
        routes: { nats_url: `nats://127.0.0.1:${await freePort()}` },
      },
    });
    expect(packages).toContain('pg');
    expect(packages).toContain('nats');
    expect(packages).not.toContain('@electric-sql/pglite');
  });
});
