// The benches' probes in processes of their own, so the bench's own work never delays
// their requests or their clocks: a probe prints "probing" (or another word it is given)
// once it runs, and one JSON line of what it saw when it is done.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');

export interface ProbeResult { sent: number; unanswered: number; wrong: number; p50: number; p99: number; p999: number; max: number }

/**
 * Runs bench/`script` with `args` and `env`; the child is in `children` while it runs, for
 * the caller to kill on an early exit.
 */
export function probeChild<T>(script: string, args: string[], env: Record<string, string>, children: Set<ChildProcess>, ready = 'probing'): { child: ChildProcess; started: Promise<void>; done: Promise<T> } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', script), ...args], {
    env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  let out = '';
  let started!: () => void;
  const startedP = new Promise<void>((r) => (started = r));
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes(ready)) started();
  });
  const done = new Promise<T>((resolve, reject) => child.once('exit', (code) => {
    children.delete(child);
    const line = out.trim().split('\n').pop() ?? '';
    if (code === 0) resolve(JSON.parse(line) as T);
    else reject(new Error(`${script} exited with ${code}: ${out}`));
  }));
  return { child, started: startedP, done };
}

/** The paced DNS probe (bench/probe.ts): one query every 5 ms to `port` for `seconds`, cycling through `names`. */
export function probeInChild(port: number, names: string[], seconds: number, dir: string, children: Set<ChildProcess>): { child: ChildProcess; started: Promise<void>; done: Promise<ProbeResult> } {
  const namesFile = join(dir, `probe-names-${port}.txt`);
  writeFileSync(namesFile, names.join('\n'));
  return probeChild<ProbeResult>('probe.ts', [String(port), namesFile], { PROBE_SECONDS: String(seconds), PROBE_INTERVAL_MS: '5' }, children);
}
