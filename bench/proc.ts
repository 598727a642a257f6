// What the benches read of a process (and the machine) from /proc, and the pid to read it by.
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The pid of a process the bench spawned: one without a pid failed to start. */
export function pidOf(child: ChildProcess): number {
  if (child.pid === undefined) throw new Error(`${child.spawnfile} did not start: it has no pid`);
  return child.pid;
}

/** CPU time (user + system) process `pid` has used so far, ms. */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / 100) * 1000;
}

/** The machine's CPU ticks so far, all cores: busy (not idle, not waiting on I/O) and total. */
export function machineTicks(): { busy: number; total: number } {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const ticks = fields.map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  return { busy: total - ticks[3] - ticks[4], total };
}

/** On Ctrl-C or SIGTERM: says so, runs `cleanup` (stopping what the run started), then exits 130. */
export function cleanUpOnSignals(cleanup: () => Promise<unknown>, log: (line: string) => void): void {
  const interrupted = () => {
    log('interrupted: stopping the simulation and dropping its database');
    void cleanup().finally(() => process.exit(130));
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, interrupted);
}
