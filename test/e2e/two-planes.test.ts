// The thread that answers DNS never stops (docs/architecture.md): a paced probe (one query every
// 5 ms, 1 s to answer) runs against the real daemon while (a) a 50 k-instance topology
// file is replaced again and again, (b) instance changes flow in through PostgreSQL and
// the syncer, and (c) the daemon starts on the embedded database. Every query must be
// answered, with the right addresses.
import { spawn } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { migrate, PresenceStore } from '../../src/presence/index.ts';
import { openPgDb } from '../../src/presence/pg-db.ts';
import { UdpClient } from '../dns/client.ts';
import { startDaemon, tempDir, waitFor } from '../helpers/daemon.ts';
import { testDatabase } from '../helpers/postgres.ts';
import { Probe } from '../helpers/probe.ts';
import { topologyJson, type TestInstance } from '../helpers/topology.ts';
import { required } from '../helpers/required.ts';
import { registration, silentLogger } from '../presence/fixtures.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

function fleet(count: number, version: number): TestInstance[] {
  // Every instance keeps its address, except a few that move with each version.
  return Array.from({ length: count }, (_, n) => ({
    id: `i${n}`, group: `g${n % 500}`, ip: n < 10 ? `10.200.${version % 250}.${n + 1}` : `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
    index: Math.floor(n / 500), health: 'running' as const,
  }));
}

const stableNames = (count: number) => Array.from({ length: 200 }, (_, k) => {
  const n = 10 + Math.floor((k * (count - 10)) / 200);
  return `i${n}.g${n % 500}.default.cf.bosh`;
});
const stableAddress = (name: string) => {
  const n = Number(required(/^i(\d+)\./.exec(name), `an instance number in ${name}`)[1]);
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
};
const expectStable = (name: string, rcode: number, addresses: string[]) => rcode === 0 && addresses.join() === stableAddress(name);

describe('the DNS thread keeps answering', () => {
  it('while a 50 k-instance topology file is replaced again and again', { timeout: 120_000 }, async () => {
    const COUNT = 50_000;
    const texts = [1, 2, 3].map((v) => topologyJson(fleet(COUNT, v), {}, v));
    const daemon = await startDaemon({ files: { 'topology.json': texts[0] }, config: { log: { level: 'info' } } });
    cleanups.push(() => daemon.stop());
    const file = join(daemon.dir, 'topology.json');
    const probe = new Probe(daemon.dnsPort, stableNames(COUNT), { expect: expectStable }).start();
    for (let round = 1; round <= 8; round++) {
      await new Promise((r) => setTimeout(r, 700));
      writeFileSync(`${file}.tmp`, texts[round % 3]);
      renameSync(`${file}.tmp`, file);
    }
    await waitFor(async () => (await (await daemon.admin('/ready')).json() as { modules: { topology: { detail: { version: number } } } }).modules.topology.detail.version === 3, 20_000, 'the last version');
    const seen = await probe.stop();
    expect(seen.sent).toBeGreaterThan(800);
    expect(seen.unanswered).toBe(0);
    expect(seen.wrong).toEqual([]);
    // The moving instances got their last addresses.
    const client = new UdpClient(daemon.dnsPort);
    expect((await client.ask('i3.g3.default.cf.bosh'))?.addresses).toEqual(['10.200.3.4']);
    client.close();
  });

  it('while instance changes flow in through PostgreSQL and the syncer', { timeout: 120_000 }, async () => {
    const database = await testDatabase();
    cleanups.push(() => database.drop());
    const db = openPgDb(database.url, silentLogger);
    cleanups.push(() => db.close());
    await migrate(db);
    const store = new PresenceStore(db);
    const COUNT = 2000;
    const base = fleet(COUNT, 1).map((i) => registration(i.id, { group: i.group, ip: i.ip, index: i.index }));
    await store.registerCell({ cellId: 'churn', owner: crypto.randomUUID(), address: null, ttlMs: 60_000 });
    await store.writeInstances('churn', base);
    const daemon = await startDaemon({
      config: { database: { url: database.url }, sync: { enabled: true, interval: 0.2 }, log: { level: 'info' } },
    });
    cleanups.push(() => daemon.stop());
    const client = new UdpClient(daemon.dnsPort);
    cleanups.push(() => client.close());
    await waitFor(async () => (await client.ask(stableNames(COUNT)[0]))?.addresses.length === 1, 20_000, 'the synced topology');
    const probe = new Probe(daemon.dnsPort, stableNames(COUNT), { expect: expectStable }).start();
    // 20 changes a second for 6 s, each one instance's address, as the registrar writes them.
    let current = base;
    for (let k = 1; k <= 120; k++) {
      const moving = k % 10;
      current = current.map((r, n) => (n === moving ? { ...r, ip: `10.201.${k % 250}.${n + 1}` } : r));
      await store.writeInstances('churn', current);
      await new Promise((r) => setTimeout(r, 50));
    }
    await waitFor(async () => (await client.ask('i0.g0.default.cf.bosh'))?.addresses.join() === '10.201.120.1', 10_000, 'the last change');
    const seen = await probe.stop();
    expect(seen.sent).toBeGreaterThan(800);
    expect(seen.unanswered).toBe(0);
    expect(seen.wrong).toEqual([]);
    // The changes went to the journal, one line each, and the syncer never took its own snapshot for someone else's.
    const journal = readFileSync(join(daemon.dir, 'topology.json.journal'), 'utf8').trim().split('\n');
    expect(journal.length).toBeGreaterThan(10);
    expect(daemon.logs.filter((l) => l.includes('"level":50'))).toEqual([]);
  });

  it('from its first answer on, while it starts on the embedded database', { timeout: 120_000 }, async () => {
    const dir = tempDir('presence-planes-');
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'start',
      '--set', 'dns.listen=[{"address":"127.0.0.1","port":0}]', '--set', 'admin.port=0', '--set', 'forward.enabled=false',
      '--set', `database.embedded_dir=${join(dir, 'pglite')}`, '--set', `topology.file=${join(dir, 'topology.json')}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => void child.kill('SIGKILL'));
    const port = await new Promise<number>((resolvePort) => {
      let pending = '';
      child.stdout.on('data', (d: Buffer) => {
        pending += d.toString();
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) if (line.includes('"presence-dns started"')) resolvePort((JSON.parse(line) as { dns: Array<{ port: number }> }).dns[0].port);
      });
    });
    // Any answer counts (the example instances appear once PGlite is open and synced).
    const probe = new Probe(port, ['upcheck.presence-dns', 'q-s0.web.default.cf.bosh'], { expect: () => true }).start();
    const client = new UdpClient(port);
    await waitFor(async () => (await client.ask('q-s0.web.default.cf.bosh'))?.addresses.length === 2, 30_000, 'the example instances');
    client.close();
    await new Promise((r) => setTimeout(r, 2000));
    const seen = await probe.stop();
    expect(seen.sent).toBeGreaterThan(400);
    expect(seen.unanswered).toBe(0);
  });
});
