// Starts the commands of command checks from a small shell process, not from the daemon.
// On Linux, Node starts a child with fork() on the main thread, which is the DNS thread.
// That thread stops while the kernel copies the daemon's page tables: milliseconds to tens
// of milliseconds at 100+ MB RSS, on every run. The shell (dash: about 1 MB) forks
// instead, so the daemon forks once, for the shell. Per run, the daemon writes one line
// (an id and the arguments, single-quoted) and reads three back: `pid ID PID`,
// `out ID FIRST-LINE` and `exit ID CODE`. Each command runs in a session of its own
// (`setsid`), so a kill of its process group reaches everything it started.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

/** What one run of a check found. */
export interface ProbeResult {
  passed: boolean;
  /** Why, for logs and status: the status code, the error, the exit code or the command's first output. */
  detail: string;
}

// `out` comes when the command's output closes: after its exit, or later when a process it
// left behind holds the pipe (the run's timeout then kills the group). The reader drains
// the rest of the output so that the command never dies of SIGPIPE.
const HELPER = `
if command -v setsid >/dev/null 2>&1; then own=setsid; else own=; fi
while IFS= read -r line; do
  id=\${line%% *}
  (
    eval "set -- \${line#* }"
    { $own "$@" </dev/null 2>&1 & echo "pid $id $!" >&3; wait "$!"; echo "exit $id $?" >&3; } |
      { IFS= read -r first; echo "out $id $first" >&3; cat >/dev/null; }
  ) 3>&1 &
done
wait
`;

/** Output kept for a run's detail. */
const DETAIL_CHARS = 512;

export interface CommandRun {
  /** SIGKILL to the command's process group (now, or as soon as its pid is known). */
  kill(): void;
}

interface Run {
  command: string;
  pid: number | null;
  killed: boolean;
  code: number | null;
  output: string | null;
  done: (result: ProbeResult) => void;
}

/** POSIX shell single quotes: the text verbatim (validation keeps control characters out). */
function quote(arg: string): string {
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

export class CommandSpawner {
  private helper: ChildProcessWithoutNullStreams | null = null;
  private readonly runs = new Map<number, Run>();
  private nextId = 1;
  private pending = '';

  /** Starts `args`; `done` gets the result once it exited and its output closed. */
  run(args: string[], done: (result: ProbeResult) => void): CommandRun {
    const id = this.nextId++;
    const run: Run = { command: args[0], pid: null, killed: false, code: null, output: null, done };
    this.runs.set(id, run);
    this.start().stdin.write(`${id} ${args.map(quote).join(' ')}\n`);
    return {
      kill: () => {
        run.killed = true;
        if (run.pid !== null) killGroup(run.pid);
      },
    };
  }

  /** Ends the shell; commands still running were killed by their runs (the daemon stopping aborts them). */
  stop(): void {
    const helper = this.helper;
    this.helper = null;
    if (helper?.pid !== undefined) killGroup(helper.pid);
    this.failAll('the daemon is shutting down');
  }

  private start(): ChildProcessWithoutNullStreams {
    if (this.helper) return this.helper;
    // Detached: its own process group, so stop() ends the shell and its per-run subshells at once.
    const helper = spawn('/bin/sh', ['-c', HELPER], { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    this.helper = helper;
    this.pending = '';
    helper.stdout.setEncoding('utf8');
    helper.stdout.on('data', (chunk: string) => this.read(chunk));
    helper.stderr.resume();
    helper.stdin.on('error', () => undefined);
    const gone = (why: string) => {
      if (this.helper !== helper) return;
      this.helper = null;
      this.failAll(why);
    };
    helper.once('error', (err: NodeJS.ErrnoException) => gone(`cannot start /bin/sh for command checks: ${err.code ?? err.message}`));
    helper.once('exit', (code, signal) => gone(`the shell that starts command checks exited (${code ?? signal}); it is restarted for the next run`));
    return helper;
  }

  private read(chunk: string): void {
    const lines = (this.pending + chunk).split('\n');
    this.pending = lines.pop() ?? '';
    for (const line of lines) {
      const match = /^(pid|out|exit) (\d+) ?(.*)$/.exec(line);
      const run = match && this.runs.get(Number(match[2]));
      if (!match || !run) continue;
      if (match[1] === 'pid') {
        run.pid = Number(match[3]);
        if (run.killed) killGroup(run.pid);
      } else if (match[1] === 'out') {
        run.output = match[3].trim().slice(0, DETAIL_CHARS);
      } else {
        run.code = Number(match[3]);
      }
      if (run.code !== null && run.output !== null) this.finish(Number(match[2]), run, run.code);
    }
  }

  private finish(id: number, run: Run, code: number): void {
    this.runs.delete(id);
    // setsid and the shell report a command they could not start as 127 (not found) or 126 (not runnable).
    const how = code === 127 || code === 126 ? `cannot run ${run.command} (exit ${code})` : code > 128 ? `killed by signal ${code - 128}` : `exit ${code}`;
    run.done({ passed: code === 0, detail: run.output ? `${how}: ${run.output}` : how });
  }

  private failAll(why: string): void {
    for (const [id, run] of this.runs) {
      this.runs.delete(id);
      if (run.pid !== null) killGroup(run.pid);
      run.done({ passed: false, detail: why });
    }
  }
}

/** SIGKILL to the group `pid` leads; without setsid there is no such group, so to the process alone. */
function killGroup(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
      return;
    } catch {
      // no such group (or the process is already gone): try the next target
    }
  }
}
