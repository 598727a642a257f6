// Check results → registrar → a real PostgreSQL: the database sees a health change once,
// when rise/fall say the state changed, and never for results that change nothing — a
// flapping service cannot flood it.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Registry } from '../../src/admin/metrics.ts';
import { HealthChecks } from '../../src/checks/index.ts';
import type { Db } from '../../src/presence/db.ts';
import { openPgDb } from '../../src/presence/pg-db.ts';
import { Registrar } from '../../src/presence/registrar.ts';
import { migrate } from '../../src/presence/schema.ts';
import { PresenceStore } from '../../src/presence/store.ts';
import { parseRegistration } from '../../src/registrations/index.ts';
import { tempDir } from '../helpers/daemon.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { testDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { TestSource, silentLogger } from '../presence/fixtures.ts';

let database: TestDatabase;
let db: Db;
/** What the setup started, stopped in reverse: only what it got to start if it failed halfway. */
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  database = await testDatabase();
  cleanups.push(() => database.drop());
  db = openPgDb(database.url, silentLogger);
  cleanups.push(() => db.close());
  await migrate(db);
});

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

it('writes the measured health once per state change, not once per result', async () => {
  const flag = join(tempDir('checks-'), 'up');
  writeFileSync(flag, '');
  const source = new TestSource();
  source.set([parseRegistration({
    id: 'w1', group: 'web', network: 'default', deployment: 'cf', ip: '10.0.0.1',
    check: { args: ['test', '-e', flag], interval: 1, rise: 2, fall: 2 },
  }, 'test')]);
  const clock = new ManualClock({ start: 0 });
  const metrics = new Registry();
  const checks = new HealthChecks({ source, clock, logger: silentLogger, metrics, random: () => 0 });
  // The registrar's own timers never fire: the test runs its passes.
  const registrar = new Registrar({
    store: new PresenceStore(db), source: checks, cellId: 'cell-w', address: null, ttlMs: 15_000,
    clock: new ManualClock({ runTimers: false }), logger: silentLogger, metrics, random: () => 1,
  });
  checks.start();
  registrar.start();
  const row = async () => {
    await registrar.kick();
    const { rows } = await db.query<{ health: string; revision: string }>('SELECT health, revision FROM presences WHERE id = $1', ['w1']);
    return { health: rows[0].health, revision: Number(rows[0].revision) };
  };
  const step = async () => {
    clock.advance(1000);
    await checks.settled();
  };
  try {
    expect((await row()).health).toBe('unchecked');
    clock.advance(0);
    await checks.settled();
    const running = await row();
    expect(running.health).toBe('running');

    // 20 passes, then 20 results alternating fail/pass: fall 2 is never reached.
    for (let i = 0; i < 20; i++) await step();
    for (let i = 0; i < 20; i++) {
      if (i % 2 === 0) rmSync(flag);
      else writeFileSync(flag, '');
      await step();
    }
    expect(await row()).toEqual(running);
    expect(await metrics.value('presence_dns_check_runs_total', { kind: 'args', result: 'failed' })).toBe(10);

    rmSync(flag);
    await step();
    await step();
    expect(await row()).toEqual({ health: 'failing', revision: running.revision + 1 });
  } finally {
    await registrar.stop();
    await checks.stop();
  }
});
