// What the fleet benches' processes share (bench/fleet.ts, bench/fleet-nodes.ts and its
// children): the simulated cells — cell c has instances cell<c>-i<j> (j < instances), 50
// groups, 20 deployments, three AZs, one IPv4 address each, unique across the fleet.
// Changes flip an instance's health; the last index of every cell is never changed, so a
// DNS probe asking for it must always be answered.
import type { Registration } from '../src/registrations/types.ts';
import { registration } from '../test/presence/fixtures.ts';

export type Health = 'running' | 'failing';

/** The fan-out's names on NATS (`sync.nats_prefix`) and its snapshot period (`sync.snapshot_every`): the daemon's defaults. */
export const FANOUT_PREFIX = 'presence-dns';
export const SNAPSHOT_EVERY = 10_000;

/** Wall time on one scale across the bench's processes (their timeOrigins differ). */
export const wallNow = () => performance.timeOrigin + performance.now();

export const instanceId = (cell: number, j: number) => `cell${cell}-i${j}`;
const groupOf = (j: number) => `g${j % 50}`;
const deploymentOf = (cell: number) => `d${cell % 20}`;

/** The registrations of cell `cell` with `instances` instances, each with the health `healthOf` gives. */
export function instancesOf(cell: number, instances: number, healthOf: (index: number) => Health): Registration[] {
  return Array.from({ length: instances }, (_, j) => {
    const n = cell * instances + j + 1;
    return registration(instanceId(cell, j), {
      group: groupOf(j), az: `z${(cell % 3) + 1}`, index: j, deployment: deploymentOf(cell),
      ip: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`, health: healthOf(j), ports: { http: 8080 },
    });
  });
}

/** 200 names spread over the fleet, of instances no change touches (so every answer must be there). */
export function probeNames(cells: number, instances: number): string[] {
  const probed = instances - 1;
  const step = Math.max(1, Math.floor(cells / 200));
  const names: string[] = [];
  for (let cell = 0; cell < cells && names.length < 200; cell += step) {
    names.push(`${instanceId(cell, probed)}.${groupOf(probed)}.default.${deploymentOf(cell)}.bosh`);
  }
  return names;
}
