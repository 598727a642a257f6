// Starts the real daemon, compiled (`bin/presence-dns.js` → dist/, built once by the global setup),
// as a child process on free ports with a config written to a temporary directory, and
// stops it with a signal.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseUpstream, resolvConfUpstreams } from '../../src/forward/upstreams.ts';
import { isLoopback } from '../../src/util/ip.ts';

const ROOT = resolve(import.meta.dirname, '../..');
/** The command every spawned daemon and CLI runs (dist/ behind it), as `npm start` and the image do. */
export const DAEMON_ENTRY = join(ROOT, 'bin/presence-dns.js');

export interface DaemonOptions {
  /** Config tree (JSON); dns.listen and admin default to free loopback ports. */
  config?: Record<string, unknown>;
  /** Files to create in the daemon's directory before start (path → content). */
  files?: Record<string, string>;
  env?: NodeJS.ProcessEnv;
  /** Reuse a directory (e.g. to restart a daemon over its own files). */
  dir?: string;
  /** Wait until /ready says 200 (default true). */
  waitReady?: boolean;
  /** Node options before the entry point (e.g. `--import` of a hook). */
  nodeArgs?: string[];
}

export interface RunningDaemon {
  dir: string;
  configFile: string;
  dnsPort: number;
  adminPort: number;
  process: ChildProcess;
  /** Everything the daemon logged, one JSON line each. */
  logs: string[];
  /** What the process wrote to stderr so far. */
  stderr(): string;
  admin(path: string, init?: RequestInit): Promise<Response>;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function tempDir(prefix = 'presence-dns-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
      ? merge(b as Record<string, unknown>, v as Record<string, unknown>)
      : v;
  }
  return out;
}

/**
 * Why a daemon with this config could send a query off this machine, or null. Tests and
 * benches forward only to upstreams they started on loopback: given in
 * forward.upstreams, or named by a resolv.conf of their own — never the machine's.
 */
export function offMachineForwarding(config: Record<string, unknown>, dir: string): string | null {
  const forward = (config.forward ?? {}) as { enabled?: boolean; upstreams?: string[]; resolv_conf?: string };
  if (forward.enabled === false) return null;
  let upstreams = forward.upstreams ?? [];
  if (upstreams.length === 0) {
    if (forward.resolv_conf === undefined) return 'forward.upstreams is empty, so it would forward to the servers in /etc/resolv.conf';
    const file = resolve(dir, forward.resolv_conf);
    upstreams = resolvConfUpstreams(readFileSync(file, 'utf8'), []).map((u) => u.label);
    if (upstreams.length === 0) return `${file} names no nameserver`;
  }
  const remote = upstreams.filter((u) => !isLoopback(parseUpstream(u).host));
  return remote.length ? `upstream(s) ${remote.join(', ')} are not on loopback` : null;
}

export async function startDaemon(options: DaemonOptions = {}): Promise<RunningDaemon> {
  const dir = options.dir ?? tempDir();
  for (const [path, content] of Object.entries(options.files ?? {})) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  const config = merge({
    dns: { listen: [{ address: '127.0.0.1', port: 0 }] },
    admin: { address: '127.0.0.1', port: 0 },
    topology: { file: 'topology.json' },
    forward: { enabled: false },
    // File-only by default: tests of the database pipeline switch these on.
    sync: { enabled: false },
    registrar: { enabled: false },
    reaper: { enabled: false },
    log: { level: 'debug' },
  }, options.config ?? {});
  const offMachine = offMachineForwarding(config, dir);
  if (offMachine) throw new Error(`a test daemon must forward only to upstreams on loopback that the test started: ${offMachine}`);
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), DAEMON_ENTRY, 'start', '--config', configFile], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const started = new Promise<{ dns: number; admin: number }>((resolve, reject) => {
    let pending = '';
    child.stdout.on('data', (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        logs.push(line);
        if (line.includes('"presence-dns started"')) {
          const entry = JSON.parse(line) as { dns: Array<{ port: number }>; admin: string | null };
          resolve({ dns: entry.dns[0].port, admin: Number(entry.admin?.split(':').pop() ?? 0) });
        }
      }
    });
    void exited.then((code) => reject(new Error(`daemon exited with ${code} before starting:\n${stderr}\n${logs.join('\n')}`)));
  });
  const ports = await started;
  const daemon: RunningDaemon = {
    dir,
    configFile,
    dnsPort: ports.dns,
    adminPort: ports.admin,
    process: child,
    logs,
    stderr: () => stderr,
    admin: (path, init) => fetch(`http://127.0.0.1:${ports.admin}${path}`, init),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  if (options.waitReady !== false) await waitFor(async () => (await daemon.admin('/ready')).status === 200, 15_000, 'daemon ready');
  return daemon;
}

/** Polls `check` every 50 ms until it returns true, failing after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
