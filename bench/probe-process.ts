// The paced DNS probe (bench/probe.ts) in a process of its own, so the bench's own work
// never delays its queries or its clock: started over a list of names, resolving to what a
// client noticed (unanswered, wrong, latency quantiles) when it is done.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');

export interface ProbeResult { sent: number; unanswered: number; wrong: number; p50: number; p99: number; p999: number; max: number }

/**
 * Probes `port` for `seconds` (one query every 5 ms, cycling through `names`); the child
 * is in `children` while it runs, for the caller to kill on an early exit.
 */
export function probeInChild(port: number, names: string[], seconds: number, dir: string, children: Set<ChildProcess>): { started: Promise<void>; done: Promise<ProbeResult> } {
  const namesFile = join(dir, `probe-names-${port}.txt`);
  writeFileSync(namesFile, names.join('\n'));
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/probe.ts'), String(port), namesFile], {
    env: { ...process.env, PROBE_SECONDS: String(seconds), PROBE_INTERVAL_MS: '5' }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  let out = '';
  let started!: () => void;
  const startedP = new Promise<void>((r) => (started = r));
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('probing')) started();
  });
  const done = new Promise<ProbeResult>((resolve, reject) => child.once('exit', (code) => {
    children.delete(child);
    const line = out.trim().split('\n').pop()!;
    if (code === 0) resolve(JSON.parse(line) as ProbeResult);
    else reject(new Error(`probe exited with ${code}: ${out}`));
  }));
  return { started: startedP, done };
}
