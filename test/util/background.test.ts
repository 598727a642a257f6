// Background failures end to end, in a process of their own (the test runner has its
// own process-level handlers): with the daemon's handlers installed, an unhandled
// rejection and an uncaught exception are logged with their task and counted, and the
// process keeps running; without them, the same rejection ends it.
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');

function script(guarded: boolean): string {
  return `
    import { pino } from 'pino';
    import { guardProcess, inBackground, reportBackgroundFailures } from './src/util/background.ts';
    const counted = [];
    if (${guarded}) {
      reportBackgroundFailures(pino({ level: 'error' }), (task) => counted.push(task));
      guardProcess();
    }
    inBackground('prefetch', Promise.reject(new Error('handled by inBackground')));
    Promise.reject(new Error('nobody caught this'));
    setTimeout(() => { throw new Error('thrown from a timer'); }, 10);
    setTimeout(() => console.log(JSON.stringify({ alive: true, counted })), 100);
  `;
}

async function runScript(guarded: boolean): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(guarded)], { cwd: ROOT, timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('background failures', () => {
  it('are logged with their task and counted, and the process keeps running', async () => {
    const { code, stdout } = await runScript(true);
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { task?: string; err?: string; level?: number; alive?: boolean; counted?: string[] });
    const errors = lines.filter((l) => l.level === 50).map((l) => [l.task, l.err]);
    expect(errors).toEqual(expect.arrayContaining([
      ['prefetch', 'handled by inBackground'],
      ['unhandled_rejection', 'nobody caught this'],
      ['uncaught_exception', 'thrown from a timer'],
    ]));
    expect(lines.at(-1)).toEqual({ alive: true, counted: expect.arrayContaining(['prefetch', 'unhandled_rejection', 'uncaught_exception']) as string[] });
  });

  it('without the handlers, an unhandled rejection ends the process (what the daemon is guarded against)', async () => {
    const { code, stdout, stderr } = await runScript(false);
    expect(code).not.toBe(0);
    expect(stdout).not.toContain('alive');
    expect(stderr).toContain('nobody caught this');
  });
});
