// Debian's PgBouncer in transaction pooling mode in front of a PostgreSQL server, on a
// free loopback port, run as the `postgres` user when the tests run as root (PgBouncer
// refuses root). `repoint()` sends it to another server (a promoted replica) the way an
// operator does: rewrite the ini, SIGHUP.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './postgres.ts';
import { waitFor } from './daemon.ts';

const AS_ROOT = userInfo().uid === 0;

function pgbouncerPath(): string {
  for (const candidate of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer']) {
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // next
    }
  }
  throw new Error('pgbouncer is not installed (Debian: apt-get install -y pgbouncer); the PgBouncer fault scenarios need it');
}

export class PgBouncer {
  private child: ChildProcess | null = null;

  private constructor(private readonly dir: string, readonly port: number, private target: number, private readonly maxClientConn: number) {}

  /** Clients connect here: postgres@127.0.0.1:<port>/postgres, pooled per transaction. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** `maxClientConn`: client connections it accepts (default 200; a simulated fleet holds thousands). */
  static async start(targetPort: number, poolSize = 4, maxClientConn = 200): Promise<PgBouncer> {
    const dir = mkdtempSync(join(tmpdir(), 'presence-pgbouncer-'));
    chmodSync(dir, 0o777);
    const bouncer = new PgBouncer(dir, await freePort(), targetPort, maxClientConn);
    bouncer.writeIni(poolSize);
    await bouncer.spawn();
    return bouncer;
  }

  private get ini(): string {
    return join(this.dir, 'pgbouncer.ini');
  }

  private poolSize(): number {
    return Number(/default_pool_size = (\d+)/.exec(readFileSync(this.ini, 'utf8'))?.[1] ?? 4);
  }

  private writeIni(poolSize = this.poolSize()): void {
    writeFileSync(this.ini, [
      '[databases]',
      `postgres = host=127.0.0.1 port=${this.target} dbname=postgres user=postgres`,
      // Any other database by its own name (a bench's private database).
      `* = host=127.0.0.1 port=${this.target} user=postgres`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1', `listen_port = ${this.port}`, `unix_socket_dir = ${this.dir}`,
      'auth_type = any', 'admin_users = postgres', 'pool_mode = transaction', `default_pool_size = ${poolSize}`, `max_client_conn = ${this.maxClientConn}`,
      'ignore_startup_parameters = extra_float_digits,options', 'server_reset_query =',
      `logfile = ${join(this.dir, 'pgbouncer.log')}`, `pidfile = ${join(this.dir, 'pgbouncer.pid')}`,
      'server_connect_timeout = 3', 'server_login_retry = 1', 'log_connections = 0', 'log_disconnections = 0',
    ].join('\n') + '\n');
    chmodSync(this.ini, 0o644);
  }

  private async spawn(): Promise<void> {
    const bin = pgbouncerPath();
    // A socket per client and per server connection: with the usual limit of 1,024 open files
    // PgBouncer stops accepting near a thousand clients ("accept() failed: Too many open
    // files"), and connections then time out in the kernel's accept queue. Root raises it;
    // anyone else takes the hard limit. (runuser's PAM session resets the soft limit: it is
    // raised again as postgres.)
    const files = Math.max(1024, this.maxClientConn + 2 * this.poolSize() + 64);
    const command = AS_ROOT
      ? `ulimit -n ${files} && exec runuser -u postgres -- bash -c 'ulimit -Sn ${files} && exec ${bin} ${this.ini}'`
      : `ulimit -Sn "$(ulimit -Hn)" && exec ${bin} ${this.ini}`;
    const [file, argv] = ['bash', ['-c', command]];
    const child = spawn(file, argv, { stdio: 'ignore' });
    this.child = child;
    await waitFor(() => {
      if (child.exitCode !== null) throw new Error(`pgbouncer exited with ${child.exitCode}: ${this.log()}`);
      try {
        return /process up|listening on 127\.0\.0\.1:\d+/.test(this.log());
      } catch {
        return false;
      }
    }, 10_000, 'pgbouncer to listen');
  }

  log(): string {
    return readFileSync(join(this.dir, 'pgbouncer.log'), 'utf8');
  }

  private pid(): number {
    return Number(readFileSync(join(this.dir, 'pgbouncer.pid'), 'utf8').trim());
  }

  /**
   * Its admin console's SHOW POOLS, summed over the pools: clients waiting for a server
   * connection now, and how long the oldest of them has waited (ms). Throws when PgBouncer
   * does not answer within a second (it may be out of open files itself).
   */
  async waiting(): Promise<{ clients: number; longestMs: number }> {
    const client = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${this.port}/pgbouncer`, connectionTimeoutMillis: 1000, query_timeout: 1000 });
    await client.connect();
    try {
      const { rows } = await client.query<{ cl_waiting: string; maxwait: string; maxwait_us: string }>('SHOW POOLS');
      return {
        clients: rows.reduce((a, r) => a + Number(r.cl_waiting), 0),
        longestMs: Math.max(0, ...rows.map((r) => Number(r.maxwait) * 1000 + Number(r.maxwait_us) / 1000)),
      };
    } finally {
      await client.end();
    }
  }

  /** Points it at another server: new server connections go there (an operator's failover step). */
  repoint(targetPort: number): void {
    this.target = targetPort;
    this.writeIni();
    process.kill(this.pid(), 'SIGHUP');
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child?.exitCode === null) {
      const exited = new Promise<false>((resolve) => child.once('exit', () => resolve(false)));
      try {
        process.kill(this.pid(), 'SIGINT');
      } catch {
        child.kill('SIGKILL');
      }
      const stillRunning = await Promise.race([exited, new Promise<true>((resolve) => setTimeout(() => resolve(true), 5000))]);
      if (stillRunning) {
        try {
          process.kill(this.pid(), 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
