// Whether a process the test knows by pid still runs: a zombie waiting to be reaped has stopped.
import { readFileSync } from 'node:fs';

export function processRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
