// `node --import tsx bench/heartbeat-probe.ts URL CELLS_INSTANCES`: one node's registrar
// path as a daemon runs it — a process of its own, the daemon's registrar pool, the real
// store — claiming a cell of its own and heartbeating it every HEARTBEAT_PROBE_INTERVAL_MS
// (100) for HEARTBEAT_PROBE_SECONDS (or until SIGTERM), then printing its latencies as one JSON line. The
// fleet bench runs it beside its thousands of simulated cells, whose own heartbeat figures
// also carry the delay of the one event loop they share.
import { randomUUID } from 'node:crypto';
import { openPgDb, POOLS } from '../src/presence/pg-db.ts';
import { PresenceStore } from '../src/presence/store.ts';
import { registration, silentLogger } from '../test/presence/fixtures.ts';
import { quantiles } from './stats.ts';

const [url, instances] = process.argv.slice(2);
const seconds = Number(process.env.HEARTBEAT_PROBE_SECONDS ?? 30);
const intervalMs = Number(process.env.HEARTBEAT_PROBE_INTERVAL_MS ?? 100);
const db = openPgDb(url, silentLogger, POOLS.registrar);
const store = new PresenceStore(db);
const cellId = `heartbeat-probe-${process.pid}`;
const owner = randomUUID();
const register = async () => {
  await store.registerCell({ cellId, owner, address: null, ttlMs: 15_000 });
  await store.writeInstances(cellId, Array.from({ length: Number(instances) }, (_, j) => registration(`${cellId}-${j}`, { group: 'probe', index: j, ip: `10.254.${j >> 8}.${j & 255}` })));
};
await register();
process.stdout.write('probing\n');
const latencies: number[] = [];
let failures = 0;
const deadline = performance.now() + seconds * 1000;
const stopped = new AbortController();
process.once('SIGTERM', () => stopped.abort());
while (performance.now() < deadline && !stopped.signal.aborted) {
  const started = performance.now();
  try {
    if (await store.heartbeat(cellId, owner)) latencies.push(performance.now() - started);
    else {
      // Expired meanwhile (its heartbeats failed for a TTL): a failure, then claimed again as a registrar would.
      failures++;
      await register();
    }
  } catch {
    failures++;
  }
  await new Promise((r) => setTimeout(r, Math.max(0, intervalMs - (performance.now() - started))));
}
await db.close();
const q = quantiles(latencies);
process.stdout.write(`${JSON.stringify({ sent: latencies.length + failures, failures, p50: q.p50, p99: q.p99, max: q.max })}\n`);
