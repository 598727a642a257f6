// Private PostgreSQL servers from Debian's binaries (/usr/lib/postgresql/<version>/bin),
// run as the `postgres` user when the tests run as root, for the fault scenarios that
// break servers: stop one (fast or as a crash), hang it (every process SIGSTOPped),
// replace its data from a dump, make a streaming replica with pg_basebackup, pause its
// replay so it falls behind (and resume it), promote it. Never the shared server on 5432.
// `stop()` and `destroy()` always leave nothing running (nor frozen).
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './postgres.ts';

const run = promisify(execFile);
const AS_ROOT = userInfo().uid === 0;

/** The newest PostgreSQL version whose server binaries Debian installed. */
export function postgresBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'pg_basebackup'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (!versions.length) throw new Error(`no PostgreSQL server binaries under ${root} (Debian: apt-get install -y postgresql); the fault scenarios need them`);
  return join(root, versions[0], 'bin');
}

/** Runs a PostgreSQL binary, as `postgres` when we are root (PostgreSQL refuses to run as root). */
async function pgTool(tool: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const bin = join(postgresBin(), tool);
  const [file, argv] = AS_ROOT ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  try {
    const { stdout } = await run(file, argv, { timeout: timeoutMs, cwd: tmpdir() });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${tool} ${args.join(' ')} failed: ${e.stderr || e.message}`, { cause: err });
  }
}

function ownedDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (AS_ROOT) execFileSync('chown', ['postgres:postgres', dir]);
  chmodSync(dir, 0o700);
  return dir;
}

export class PgServer {
  private running = false;
  /** The processes `freeze()` stopped, until `thaw()`. */
  private frozen: number[] = [];

  private constructor(readonly dataDir: string, readonly port: number) {}

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** A new cluster (trust auth on loopback, ready to serve replicas), started. */
  static async create(): Promise<PgServer> {
    const dataDir = ownedDir('presence-pg15-');
    await pgTool('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    const server = new PgServer(dataDir, await freePort());
    server.configure();
    await server.start();
    return server;
  }

  /**
   * A streaming replica of `primary` (pg_basebackup -R), started on a port of its own.
   * It applies the primary's changes until `pauseReplay()`. The base backup asks for an
   * immediate checkpoint: a spread one waits on the primary's checkpoint schedule (a minute
   * or more once a database was created on it).
   */
  static async replicaOf(primary: PgServer): Promise<PgServer> {
    const dataDir = ownedDir('presence-pg15-replica-');
    await pgTool('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', dataDir, '-R', '-X', 'stream', '--no-sync', '--checkpoint=fast']);
    const server = new PgServer(dataDir, await freePort());
    server.configure();
    await server.start();
    return server;
  }

  private configure(): void {
    // hot_standby_feedback: a replica that serves reads keeps the primary from vacuuming
    // rows its queries still see; without it replay cancels them ("conflict with recovery").
    const conf = [
      `port = ${this.port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${this.dataDir}'`,
      'fsync = off', 'synchronous_commit = off', 'full_page_writes = off', 'wal_level = replica', 'max_wal_senders = 4',
      'hot_standby = on', 'hot_standby_feedback = on', 'max_connections = 100', "log_min_messages = 'fatal'",
    ].join('\n');
    // postgresql.auto.conf is read last: these win over what a base backup copied.
    const file = join(this.dataDir, 'postgresql.auto.conf');
    const primaryInfo = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('primary_conninfo')) : [];
    writeFileSync(file, `${[conf, ...primaryInfo].join('\n')}\n`);
    writeFileSync(join(this.dataDir, 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n');
    if (AS_ROOT) execFileSync('chown', ['-R', 'postgres:postgres', this.dataDir]);
  }

  async start(): Promise<void> {
    if (this.running) return;
    await pgTool('pg_ctl', ['-D', this.dataDir, '-w', '-t', '60', '-l', join(this.dataDir, 'server.log'), 'start']);
    this.running = true;
  }

  /** `fast`: a clean shutdown; `immediate`: as a crash (no checkpoint, clients cut off). */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    // A frozen server could not hear pg_ctl.
    this.thaw();
    if (!this.running) return;
    await pgTool('pg_ctl', ['-D', this.dataDir, '-w', '-t', '60', '-m', mode, 'stop']);
    this.running = false;
  }

  /**
   * Hangs the server as a stuck machine would: the postmaster (from postmaster.pid) is
   * stopped first, so it forks nothing more, then every process under it — backends,
   * checkpointer, WAL writer... Connections stay open and connecting still completes in
   * the kernel, but nothing answers. Returns the pids stopped.
   */
  freeze(): number[] {
    if (this.frozen.length) return this.frozen;
    const postmaster = Number(readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(postmaster, 'SIGSTOP');
    this.frozen = [postmaster];
    for (const pid of descendants(postmaster)) {
      try {
        process.kill(pid, 'SIGSTOP');
        this.frozen.push(pid);
      } catch {
        // Exited meanwhile.
      }
    }
    return this.frozen;
  }

  /** Lets every process `freeze()` stopped run again. */
  thaw(): void {
    for (const pid of this.frozen.reverse()) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // Gone.
      }
    }
    this.frozen = [];
  }

  /** Stops applying the primary's changes (a replica that falls behind). */
  async pauseReplay(): Promise<void> {
    await this.sql('SELECT pg_wal_replay_pause()');
  }

  /** Applies the primary's changes again, from where `pauseReplay()` stopped. */
  async resumeReplay(): Promise<void> {
    await this.sql('SELECT pg_wal_replay_resume()');
  }

  /** Makes a replica the primary (it keeps only what it had applied). */
  async promote(): Promise<void> {
    await pgTool('pg_ctl', ['-D', this.dataDir, '-w', '-t', '60', 'promote']);
  }

  async sql<T extends Record<string, unknown> = Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
    const client = new pg.Client({ connectionString: this.url });
    await client.connect();
    try {
      return (await client.query<T>(text, params)).rows;
    } finally {
      await client.end();
    }
  }

  /** A custom-format dump of the database. */
  async dump(file: string): Promise<void> {
    await pgTool('pg_dump', ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', '-Fc', '-f', file, 'postgres']);
  }

  /** Replaces the presence tables with the dump's (an operator restoring an older backup). */
  async restore(file: string): Promise<void> {
    await pgTool('pg_restore', ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', '-d', 'postgres', '--clean', '--if-exists', '--single-transaction', file]);
  }

  /** Stops the server and removes its data. */
  async destroy(): Promise<void> {
    await this.stop('immediate').catch(() => undefined);
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Every process below `pid` (children, their children...), from /proc. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const out: number[] = [];
  const queue = [pid];
  for (let parent = queue.shift(); parent !== undefined; parent = queue.shift()) {
    const next = children.get(parent) ?? [];
    out.push(...next);
    queue.push(...next);
  }
  return out;
}

/** A directory the `postgres` user can write (for dumps). */
export function postgresWritableDir(): string {
  const dir = ownedDir('presence-pg-dump-');
  chmodSync(dir, 0o755);
  return dir;
}
