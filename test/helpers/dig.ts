// Runs the real `dig` and parses its output into sections, so end-to-end tests assert on
// exactly what an operator would see.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { required } from './required.ts';

const run = promisify(execFile);

export interface DigRecord {
  name: string;
  ttl: number;
  type: string;
  data: string;
}

export interface DigResult {
  status: string;
  flags: string[];
  answer: DigRecord[];
  authority: DigRecord[];
  additional: DigRecord[];
  /** Lines of the OPT pseudosection (EDNS, EDE, ...). */
  opt: string[];
  server: string;
  raw: string;
}

function parseRecord(line: string): DigRecord {
  const [name, ttl, , type, ...data] = line.split(/\s+/);
  return { name, ttl: Number(ttl), type, data: data.join(' ') };
}

export function parseDig(raw: string): DigResult {
  const result: DigResult = { status: '', flags: [], answer: [], authority: [], additional: [], opt: [], server: '', raw };
  let section: 'answer' | 'authority' | 'additional' | 'opt' | null = null;
  for (const line of raw.split('\n')) {
    const status = /status: (\w+)/.exec(line);
    if (status) result.status = status[1];
    const flags = /;; flags: ([^;]*);/.exec(line);
    if (flags) result.flags = flags[1].trim().split(/\s+/);
    const server = /;; SERVER: (\S+)/.exec(line);
    if (server) result.server = server[1];
    if (line.startsWith(';; ANSWER SECTION')) section = 'answer';
    else if (line.startsWith(';; AUTHORITY SECTION')) section = 'authority';
    else if (line.startsWith(';; ADDITIONAL SECTION')) section = 'additional';
    else if (line.startsWith(';; OPT PSEUDOSECTION')) section = 'opt';
    else if (line.startsWith(';; QUESTION SECTION') || line.trim() === '') section = section === 'opt' ? null : section && line.trim() === '' ? null : section;
    else if (section === 'opt') result.opt.push(line.replace(/^;\s*/, ''));
    else if (section && !line.startsWith(';')) result[section].push(parseRecord(line));
  }
  return result;
}

/** `dig @127.0.0.1 -p PORT NAME TYPE [options]`; `+tries=1 +time=2` unless overridden. */
export async function dig(port: number, name: string, type = 'A', options: string[] = [], server = '127.0.0.1'): Promise<DigResult> {
  const args = [`@${server}`, '-p', String(port), name, type, '+tries=1', '+time=2', ...options];
  // dig's own wait (the last +time=) and then some: the process is killed only if dig itself hangs.
  const waits = Number(required(args.findLast((a) => a.startsWith('+time=')), 'a +time= option').slice('+time='.length));
  const { stdout } = await run('dig', args, { timeout: Math.max(15_000, (waits + 10) * 1000) }).catch((err: unknown) => {
    // dig exits non-zero on a timeout or a SERVFAIL but still prints what it got.
    if (err instanceof Error && 'stdout' in err && typeof err.stdout === 'string' && err.stdout) return { stdout: err.stdout };
    throw err;
  });
  return parseDig(stdout);
}

export function addresses(result: DigResult): string[] {
  return result.answer.filter((r) => r.type === 'A' || r.type === 'AAAA').map((r) => r.data).sort();
}
