// PostgreSQL's side of the fleet benches (bench/fleet.ts, bench/fleet-nodes.ts), watched
// every second through a connection of its own straight to the server: the CPU of the
// bench database's backends (from /proc: the server is on this machine), the connections
// each part holds (by application_name), how many wait on a lock, and the transactions
// committed. `mark()` reads the running totals, so a run can cut its watch into phases.
// A connection the server ends (a replica cancelling it for a conflict with recovery) is
// opened again at the next sample; a sample that fails is skipped.
import pg from 'pg';
import { cpuMs } from './proc.ts';

const WATCH_NAME = 'fleet bench watch';

/** The running totals at one moment: the difference of two marks is a phase. */
export interface WatchMark {
  /** performance.now() of the mark. */
  at: number;
  /** CPU the database's backends used since the watch started, ms. */
  cpuMs: number;
  /** Transactions committed in the database since the watch started (pg_stat_database lags by up to a second). */
  commits: number;
}

/** One phase between two marks: the backends' CPU (% of one core) and transactions, per second and in all. */
export function phase(from: WatchMark, to: WatchMark): { seconds: number; cpuPercent: number; cpuMs: number; commits: number } {
  const ms = to.at - from.at;
  return { seconds: ms / 1000, cpuPercent: ((to.cpuMs - from.cpuMs) / ms) * 100, cpuMs: to.cpuMs - from.cpuMs, commits: to.commits - from.commits };
}

export class PostgresWatch {
  private client: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly cpu = new Map<number, { first: number; last: number }>();
  private started = 0;
  private stoppedAt = 0;
  /** The first sample's backends count from then; any seen later began during the watch. */
  private baselining = true;
  peakConnections = 0;
  peakByPart: Record<string, number> = {};
  peakLockWaits = 0;
  /** What the backends waiting on a lock ran, at the peak of lock waits. */
  lockWaitQueries: Record<string, number> = {};
  peakActive = 0;
  private commitsAtStart = 0;
  /** Transactions (and single statements) committed in the database during the watch. */
  committed = 0;

  constructor(private readonly url: string, private readonly database: string) {}

  async start(): Promise<void> {
    this.started = performance.now();
    this.commitsAtStart = await this.commits();
    await this.sample();
    this.baselining = false;
    const tick = () => {
      this.timer = setTimeout(() => void this.sample().catch(() => undefined).finally(() => this.timer && tick()), 1000);
    };
    tick();
  }

  /** One statement on the watch's connection, opened first if the last one was lost. */
  private async query<R extends pg.QueryResultRow>(text: string, params: unknown[]): Promise<R[]> {
    let client = this.client;
    if (!client) {
      const opened = new pg.Client({ connectionString: this.url, application_name: WATCH_NAME });
      opened.on('error', () => {
        if (this.client === opened) this.client = null;
      });
      await opened.connect();
      this.client = client = opened;
    }
    try {
      return (await client.query<R>(text, params)).rows;
    } catch (err) {
      if (this.client === client) this.client = null;
      void client.end().catch(() => undefined);
      throw err;
    }
  }

  /** pg_stat_database's count; tried twice, as a lost connection is opened again. */
  private async commits(): Promise<number> {
    const read = () => this.query<{ n: string }>('SELECT xact_commit AS n FROM pg_stat_database WHERE datname = $1', [this.database]);
    const rows = await read().catch(read);
    return Number(rows[0].n);
  }

  private async sample(): Promise<void> {
    // Every watch's own connection is left out (a bench may run one per phase).
    const rows = await this.query<{ pid: number; part: string; state: string | null; waiting: string | null; query: string }>(
      `SELECT pid, application_name AS part, state, wait_event_type AS waiting, left(regexp_replace(query, '\\s+', ' ', 'g'), 60) AS query
         FROM pg_stat_activity WHERE datname = $1 AND application_name <> $2`,
      [this.database, WATCH_NAME],
    );
    for (const r of rows) {
      try {
        const now = cpuMs(r.pid);
        const seen = this.cpu.get(r.pid) ?? { first: this.baselining ? now : 0, last: now };
        seen.last = now;
        this.cpu.set(r.pid, seen);
      } catch {
        // The backend exited meanwhile.
      }
    }
    if (rows.length > this.peakConnections) {
      this.peakConnections = rows.length;
      this.peakByPart = {};
      for (const r of rows) this.peakByPart[r.part || '(none)'] = (this.peakByPart[r.part || '(none)'] ?? 0) + 1;
    }
    const waiting = rows.filter((r) => r.waiting === 'Lock');
    if (waiting.length > this.peakLockWaits) {
      this.peakLockWaits = waiting.length;
      this.lockWaitQueries = {};
      for (const r of waiting) this.lockWaitQueries[r.query] = (this.lockWaitQueries[r.query] ?? 0) + 1;
    }
    this.peakActive = Math.max(this.peakActive, rows.filter((r) => r.state === 'active').length);
  }

  private backendCpuMs(): number {
    let ms = 0;
    for (const { first, last } of this.cpu.values()) ms += last - first;
    return ms;
  }

  /** Samples now and reads the running totals. */
  async mark(): Promise<WatchMark> {
    await this.sample().catch(() => undefined);
    return { at: performance.now(), cpuMs: this.backendCpuMs(), commits: (await this.commits()) - this.commitsAtStart };
  }

  get seconds(): number {
    return (this.stoppedAt - this.started) / 1000;
  }

  /** The backends' CPU over the watch, percent of one core. */
  cpuPercent(): number {
    return (this.backendCpuMs() / (this.stoppedAt - this.started)) * 100;
  }

  async stop(): Promise<void> {
    const timer = this.timer;
    this.timer = null;
    if (timer) clearTimeout(timer);
    await this.sample().catch(() => undefined);
    this.stoppedAt = performance.now();
    // Every statement outside a transaction is one; pg_stat_database lags by up to a second.
    this.committed = (await this.commits()) - this.commitsAtStart;
    await this.client?.end();
  }
}
