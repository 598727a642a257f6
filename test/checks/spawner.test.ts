// The shell that starts command checks: arguments reach the command verbatim (no shell
// interpretation of the check's own words), and a shell that dies fails the runs in flight
// and is started again for the next run.
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { ProbeResult } from '../../src/checks/probes.ts';
import { CommandSpawner } from '../../src/checks/spawner.ts';
import { waitFor } from '../helpers/daemon.ts';

const spawners: CommandSpawner[] = [];

afterEach(() => {
  for (const spawner of spawners.splice(0)) spawner.stop();
});

function started(): CommandSpawner {
  const spawner = new CommandSpawner();
  spawners.push(spawner);
  return spawner;
}

function run(spawner: CommandSpawner, args: string[]): Promise<ProbeResult> {
  return new Promise((resolve) => spawner.run(args, resolve));
}

/** This process's children that run `/bin/sh -c …`: the spawner's shell. */
function helperShells(): number[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      return ppid === process.pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('/bin/sh\0-c\0');
    } catch {
      return false;
    }
  }).map(Number);
}

describe('CommandSpawner', () => {
  it('passes every argument verbatim: quotes, spaces, $, backticks and ; are not the shell’s', async () => {
    const args = ["it's", 'a b', '$HOME', '`id`', ';echo injected', '"q"', '\\'];
    const result = await run(started(), ['printf', '%s|', ...args]);
    expect(result).toEqual({ passed: true, detail: `exit 0: ${args.join('|')}|` });
  });

  it('runs commands side by side and reports each its own exit code', async () => {
    const spawner = started();
    const results = await Promise.all([0, 1, 2, 3].map((code) => run(spawner, ['sh', '-c', `sleep 0.1; echo run ${code}; exit ${code}`])));
    expect(results).toEqual([0, 1, 2, 3].map((code) => ({ passed: code === 0, detail: `exit ${code}: run ${code}` })));
  });

  it('a shell that dies fails the runs in flight; the next run starts a new one', async () => {
    const spawner = started();
    const hanging = run(spawner, ['sleep', '5']);
    await waitFor(() => helperShells().length === 1, 10_000, 'the helper shell');
    const [shell] = helperShells();
    process.kill(-shell, 'SIGKILL');
    expect((await hanging).detail).toMatch(/^the shell that starts command checks exited \(SIGKILL\)/);
    expect(await run(spawner, ['true'])).toEqual({ passed: true, detail: 'exit 0' });
    expect(helperShells()).not.toContain(shell);
  });
});
