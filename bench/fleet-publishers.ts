// `node --import tsx bench/fleet-publishers.ts DIRECT_URL NATS_URL COUNT`: the fleet
// simulator's publisher candidates (bench/fleet-nodes.ts), COUNT of them in this process,
// each as a candidate daemon runs the fan-out — its own NATS connection, its own pool
// straight to the primary (LISTEN works there), the SQL lock deciding which one publishes.
// Prints "publishing" once one of them holds the lock, and on SIGTERM stops them all and
// prints one JSON line: how many took the lock in turn (a failover shows as more than one).
import { pino } from 'pino';
import { systemClock } from '../src/clock.ts';
import { startFanout } from '../src/fanout/index.ts';
import { SqlChangeSource } from '../src/presence/change-source.ts';
import { openPgDb, POOLS } from '../src/presence/pg-db.ts';
import { PresenceStore } from '../src/presence/store.ts';
import { FANOUT_PREFIX, SNAPSHOT_EVERY } from './fleet-shape.ts';

const [url, natsUrl, count] = process.argv.slice(2);
const TTL_MS = 15_000;
const INTERVAL_MS = 1000;
const logger = pino({ level: 'warn' }, pino.destination(2));
const candidates = Array.from({ length: Number(count) }, (_, i) => {
  const db = openPgDb(url, logger, POOLS.syncer);
  const fanout = startFanout({
    settings: { natsUrl, prefix: FANOUT_PREFIX, publisher: true, snapshotEvery: SNAPSHOT_EVERY, snapshotSlots: 4, owner: `fleet publisher ${i}` },
    sql: new SqlChangeSource(new PresenceStore(db), { listen: true }), intervalMs: INTERVAL_MS, lockTtlMs: TTL_MS, clock: systemClock, logger, name: `fleet publisher ${i}`,
  });
  return { db, fanout, published: false };
});

let announced = false;
const watch = setInterval(() => {
  for (const c of candidates) c.published ||= c.fanout.status().publishing;
  if (!announced && candidates.some((c) => c.published)) {
    announced = true;
    process.stdout.write('publishing\n');
  }
}, 100);

process.once('SIGTERM', () => {
  clearInterval(watch);
  void (async () => {
    await Promise.all(candidates.map((c) => c.fanout.stop()));
    await Promise.all(candidates.map((c) => c.db.close()));
    process.stdout.write(`${JSON.stringify({ publishers: candidates.filter((c) => c.published).length })}\n`);
    process.exit(0);
  })();
});
