// Disk full while the syncer writes the topology file: the file lives on a tiny tmpfs
// (mounted here, so root only) that is then filled up, and more instances register under
// a steady UDP load. The last good file stays whole on disk, the failed writes are counted
// in /metrics, DNS answers the new instances from memory (0 failed queries, 0 records
// lost), and once space is freed the file is rewritten whole with every instance.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, rmdirSync, writeSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import { required } from '../../helpers/required.ts';
import { PgServer } from '../../helpers/pg-server.ts';
import { syncedTopology } from '../../helpers/topology.ts';
import { metric, type TestInstance } from '../../presence/daemons.ts';
import { Fleet } from './fleet.ts';
import { sleep } from './report.ts';

const AS_ROOT = userInfo().uid === 0;
const WHY_SKIPPED = 'skipped: mounting the tiny tmpfs needs root';
let mountPoint: string | null = null;
let database: PgServer;
let fleet: Fleet;
/** What the setup started, stopped in reverse: only what it got to start if it failed halfway. */
const cleanups: Array<() => unknown> = [];
let daemon: RunningDaemon;

const instance = (n: number): TestInstance => ({ id: `disk-${n}`, group: `diskgroup${n}`, ip: `10.80.${n >> 8}.${n & 255}` });

/** Writes zeros into `file` until the filesystem says ENOSPC. */
function fillUp(file: string): void {
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(4096);
  try {
    for (;;) writeSync(fd, block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

beforeAll(async () => {
  if (!AS_ROOT) return;
  mountPoint = mkdtempSync(join(tmpdir(), 'presence-tinyfs-'));
  const mounted = mountPoint;
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mounted]);
  cleanups.push(() => {
    execFileSync('umount', [mounted]);
    rmdirSync(mounted);
  });
  database = await PgServer.create();
  cleanups.push(() => database.destroy());
  fleet = new Fleet(database.url, 2);
  cleanups.push(() => fleet.stop());
  daemon = await fleet.start('disk-cell', [1, 2, 3, 4, 5].map(instance), { topology: { file: join(mountPoint, 'topology.json') } });
  await fleet.waitAllAnswer('the first instances');
});

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

it.skipIf(!AS_ROOT)(`disk full while writing the topology file: the last good file kept whole, the error counted, DNS unaffected${AS_ROOT ? '' : ` (${WHY_SKIPPED})`}`, async () => {
  const tinyfs = required(mountPoint, 'the tmpfs mount point');
  const file = join(tinyfs, 'topology.json');
  const filler = join(tinyfs, 'filler');
  const before = syncedTopology(file);
  expect(before.instances).toHaveLength(5);
  const failuresBefore = await metric(daemon, 'presence_dns_topology_write_failures_total');
  await fleet.underLoad('disk full while writing the topology file', async () => {
    fillUp(filler);
    // More than a page of journal: tmpfs has no room for it (a small append fits the journal's last page).
    fleet.register(daemon, ...Array.from({ length: 60 }, (_, n) => instance(n + 6)));
    await fleet.waitAllAnswer('the new instances, answered from memory', 30_000);
    await waitFor(async () => (await metric(daemon, 'presence_dns_topology_write_failures_total')) > failuresBefore, 30_000, 'the failed write to be counted');
    // What is on disk is still a whole, readable topology with everything it had.
    const onDisk = syncedTopology(file);
    expect(onDisk.instances.map((i) => i.id)).toEqual(expect.arrayContaining(before.instances.map((i) => i.id)));
    expect(daemon.logs.some((l) => l.includes('"level":50') && l.includes('ENOSPC'))).toBe(true);
    // Space again: the file is rewritten whole at the next chance.
    rmSync(filler);
    await waitFor(() => syncedTopology(file).instances.length === 65, 30_000, 'the file rewritten with every instance');
    await sleep(500);
  });
  // The file holds every instance by its identity: a restart would answer them all.
  expect(syncedTopology(file).instances.map((i) => `${i.id} ${i.ip}`).sort()).toEqual(fleet.known.map((i) => `${i.id} ${i.ip}`).sort());
  expect(daemon.process.exitCode).toBeNull();
}, 60_000);
