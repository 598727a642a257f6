// Cells dying, on five real daemons sharing a private PostgreSQL (TTL 2 s, the guard's
// hold 3 TTLs): the node holding the reaper lock is killed — another takes the lock within
// the lock's TTL and the dead cell's instance is gone everywhere within TTL + 5 s; then
// half the remaining cells die at once — more than one cell and more than
// reaper.max_expire_fraction (0.3) of them, so the mass-expiry guard holds them (still
// answered, the trip counted) until reaper.guard_hold TTLs have passed, and then they go.
// Throughout, the surviving nodes answer every instance of a living cell (0 failed
// queries, 0 records lost; a killed cell's instances need no longer be answered).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import { PgServer } from '../../helpers/pg-server.ts';
import { answers, metric, type TestInstance } from '../../presence/daemons.ts';
import { Fleet } from './fleet.ts';
import { sleep } from './report.ts';

const TTL_SECONDS = 2;
const GUARD_HOLD_TTLS = 3;
let database: PgServer;
let fleet: Fleet;
/** What the setup started, stopped in reverse: only what it got to start if it failed halfway. */
const cleanups: Array<() => Promise<unknown>> = [];

const cell = (n: number): TestInstance => ({ id: `cell-${n}`, group: `cellgroup${n}`, ip: `10.70.0.${n}` });

beforeAll(async () => {
  database = await PgServer.create();
  cleanups.push(() => database.destroy());
  fleet = new Fleet(database.url, TTL_SECONDS);
  cleanups.push(() => fleet.stop());
  for (let n = 1; n <= 5; n++) await fleet.start(`cell-${n}`, [cell(n)], { reaper: { enabled: true, guard_hold: GUARD_HOLD_TTLS } });
  await fleet.waitAllAnswer('every node to answer every cell');
}, 120_000);

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function holders(): Promise<RunningDaemon[]> {
  const held = await Promise.all(fleet.nodes.map(async (d) => (await metric(d, 'presence_dns_reaper_holder')) === 1));
  return fleet.nodes.filter((_, n) => held[n]);
}

/** True when every node still running answers `instance` (or, with `gone`, answers NXDOMAIN for it). */
async function everywhere(instance: TestInstance, gone = false): Promise<boolean> {
  const got = await Promise.all(fleet.nodes.map((d) => answers(d, instance.group)));
  return got.every((g) => (gone ? g[0] === 'NXDOMAIN' : g[0] === instance.ip));
}

/** Kills `victims` at once under a load on the survivors; `then` runs after the kill; `note` goes in the row. */
async function killUnderLoad(scenario: string, victims: RunningDaemon[], then: (killedAt: number) => Promise<void>, note: () => string): Promise<void> {
  const survivors = fleet.nodes.filter((d) => !victims.includes(d));
  await fleet.underLoad(scenario, async () => {
    await sleep(300);
    const killedAt = Date.now();
    await Promise.all(victims.map((d) => fleet.kill(d)));
    await then(killedAt);
  }, { daemons: survivors, note });
}

it('the reaper holder killed: another node takes the lock within the lock TTL, and the dead cell expires within TTL + 5 s', async () => {
  await waitFor(async () => (await holders()).length === 1, 10_000, 'one reaper holder');
  const [holder] = await holders();
  const [deadCell] = fleet.instancesOf(holder);
  let lockTakenMs = 0;
  let expiredMs = 0;
  await killUnderLoad('reaper holder killed (1 of 5 cells)', [holder], async (killedAt) => {
    await waitFor(async () => (await holders()).length === 1, TTL_SECONDS * 1000 + 3000, 'another node to take the reaper lock');
    lockTakenMs = Date.now() - killedAt;
    await waitFor(() => everywhere(deadCell, true), (TTL_SECONDS + 5) * 1000 + 3000, 'the dead cell to expire everywhere');
    expiredMs = Date.now() - killedAt;
  }, () => `lock taken ${(lockTakenMs / 1000).toFixed(1)} s and the cell gone ${(expiredMs / 1000).toFixed(1)} s after the kill`);
  // The lock is taken once its TTL has run out, on the next pass (a third of it) of another node.
  expect(lockTakenMs).toBeLessThan(TTL_SECONDS * 1000 + 2000);
  expect(expiredMs).toBeLessThan((TTL_SECONDS + 5) * 1000);
  expect(await fleet.metricSum('presence_dns_cells_expired_total')).toBe(1);
}, 60_000);

it('half the cells killed at once: the mass-expiry guard trips and holds them (still answered) for reaper.guard_hold TTLs, then they expire', async () => {
  // Not the holder: this is about the guard, not the lock.
  const [holder] = await holders();
  const victims = fleet.nodes.filter((d) => d !== holder).slice(0, fleet.nodes.length / 2);
  expect(victims).toHaveLength(2);
  const tripsBefore = await fleet.metricSum('presence_dns_expiry_guard_trips_total');
  const deadCells = victims.map((d) => fleet.instancesOf(d));
  let heldAfterTtls = 0;
  let goneMs = 0;
  await killUnderLoad('half the cells killed at once (2 of 4)', victims, async (killedAt) => {
    await waitFor(async () => (await fleet.metricSum('presence_dns_expiry_guard_trips_total')) > tripsBefore, (TTL_SECONDS + 3) * 1000, 'the guard to trip');
    // Well past their TTL, the silent cells are still answered everywhere: a partition is likelier than a mass death.
    await sleep(2 * TTL_SECONDS * 1000);
    const held = await Promise.all(deadCells.map(async (instances) => (await Promise.all(instances.map((i) => everywhere(i)))).every(Boolean)));
    heldAfterTtls = held.filter(Boolean).length;
    await waitFor(async () => (await Promise.all(deadCells.flat().map((i) => everywhere(i, true)))).every(Boolean), (GUARD_HOLD_TTLS + 3) * TTL_SECONDS * 1000, 'the held cells to expire after the hold');
    goneMs = Date.now() - killedAt;
  }, () => `${heldAfterTtls} of 2 held after 2 TTLs; gone ${(goneMs / 1000).toFixed(1)} s after the kill`);
  // Both held, or — when their last heartbeats fell a reaper pass apart — the first let go
  // alone (one cell is never held) and the second held: never more than one cell at once.
  expect(heldAfterTtls).toBeGreaterThanOrEqual(1);
  // Held for guard_hold TTLs from when the guard first held them (after their TTL).
  expect(goneMs).toBeGreaterThanOrEqual(GUARD_HOLD_TTLS * TTL_SECONDS * 1000);
  expect(await fleet.metricSum('presence_dns_cells_expired_total')).toBeGreaterThanOrEqual(2);
}, 90_000);
