// What a running daemon sees: `records` (GET /v1/records, what DNS answers from),
// `status` (GET /v1/status) and `cells` (GET /v1/cells, like `consul members`).
import type { CellRow, RecordsAnswer } from '../inspect/index.ts';
import { CELLS_PATH, RECORDS_PATH, STATUS_PATH } from '../inspect/index.ts';
import { ADMIN_OPTIONS, ADMIN_OPTIONS_USAGE, AdminClient, expectPositionals, printJson, table, text, type Command } from './io.ts';

const RECORD_FILTERS = ['group', 'network', 'deployment', 'domain', 'cell', 'health', 'limit'] as const;

export const recordsCommand: Command = {
  name: 'records',
  usage: `usage: presence-dns records [--group G] [--network N] [--deployment D] [--domain D]
                            [--cell C] [--health running|failing|unchecked] [--limit N]
  The instance records DNS answers from right now (not the file, not the database).
  Shows at most --limit (default 10000); says how many more matched.
options:
${ADMIN_OPTIONS_USAGE}`,
  options: { ...ADMIN_OPTIONS, ...Object.fromEntries(RECORD_FILTERS.map((f) => [f, { type: 'string' } as const])) },
  async run({ values, positionals }, io) {
    expectPositionals('records', positionals, []);
    const query = new URLSearchParams();
    for (const filter of RECORD_FILTERS) {
      const value = text(values, filter);
      if (value !== undefined) query.set(filter, value);
    }
    const qs = query.size ? `?${query}` : '';
    const { body } = await (await AdminClient.for(values, io.env)).call('GET', `${RECORDS_PATH}${qs}`);
    const answer = body as RecordsAnswer;
    if (values.json) {
      printJson(io, answer);
      return 0;
    }
    const rows = [['NAME', 'IP', 'HEALTH', 'CELL']];
    for (const r of answer.records) rows.push([r.name, r.ip, r.health ?? '-', r.cell ?? '-']);
    io.out(table(rows));
    if (answer.truncated) io.err(`(${answer.records.length} of ${answer.matched} matching records shown; use --limit)\n`);
    return 0;
  },
};

type Status = Record<string, unknown> & {
  cell: string | null;
  revision: number | null;
  records: number;
  staleSeconds: number | null;
  dbUp: boolean | null;
  reaperLockHolder: boolean | null;
  uptimeSeconds: number;
  database: string | null;
  topology: {
    file: string; loaded: boolean; lastError: string | null; refused: string | null; writeError: string | null;
    cacheError: string | null; journalError: string | null; workerUp: boolean; workerRestarts: number;
  };
  routes: { natsConnected: boolean; endpoints: number } | null;
  registrations: { instances: number; fromFiles: number; fromApi: number; rejectedFiles: Record<string, string> } | null;
  checks: Array<{ instance: string; name: string; health: string; detail: string | null }> | null;
  dns: { listen: Array<{ address: string; port: number; transport: string }>; threads: number };
};

const onOff = (value: boolean | null, yes: string, no: string, off = 'off') => (value === null ? off : value ? yes : no);

/** "3 running, 1 failing (web-0 http …: status 503)": counts by state, then what fails. */
function checksText(checks: Status['checks']): string {
  if (!checks?.length) return checks === null ? 'off' : 'none';
  const counts = new Map<string, number>();
  for (const c of checks) counts.set(c.health, (counts.get(c.health) ?? 0) + 1);
  const failing = checks.filter((c) => c.health === 'failing').map((c) => `${c.instance} ${c.name}${c.detail ? `: ${c.detail}` : ''}`);
  return `${[...counts].map(([health, n]) => `${n} ${health}`).join(', ')}${failing.length ? ` (${failing.join('; ')})` : ''}`;
}

function statusText(s: Status): string {
  const t = s.topology;
  const problems = [t.lastError, t.refused && `refused: ${t.refused}`, t.writeError && `write error: ${t.writeError}`, t.cacheError, t.journalError].filter(Boolean);
  const lines: Array<[string, string]> = [
    ['cell', s.cell ?? '(no registrar)'],
    ['revision', s.revision === null ? 'no topology loaded' : `${s.revision} (${s.records} records)`],
    ['topology file', `${t.file}${problems.length ? ` (${problems.join('; ')})` : ''}`],
    ['topology worker', `${t.workerUp ? 'running' : 'DOWN, being restarted'}${t.workerRestarts ? `; restarted ${t.workerRestarts} time(s) (see the daemon's log)` : ''}`],
    ['database', s.database === null ? 'none' : `${s.database}, ${onOff(s.dbUp, 'up', 'DOWN', 'not checked yet')}`],
    ['stale', s.staleSeconds === null ? '-' : `${s.staleSeconds} s since the database last confirmed the topology`],
    ['reaper lock', onOff(s.reaperLockHolder, 'held by this node', 'held elsewhere or free')],
    ['routes', s.routes ? `${s.routes.endpoints} endpoints, NATS ${s.routes.natsConnected ? 'connected' : 'DISCONNECTED'}` : 'off'],
    ['registrations', s.registrations
      ? `${s.registrations.instances} (${s.registrations.fromFiles} from files, ${s.registrations.fromApi} from the API)${Object.keys(s.registrations.rejectedFiles).length ? `; rejected: ${Object.keys(s.registrations.rejectedFiles).join(', ')}` : ''}`
      : 'off'],
    ['checks', checksText(s.checks)],
    ['dns', `${s.dns.listen.map((l) => `${l.transport} ${l.address.includes(':') ? `[${l.address}]` : l.address}:${l.port}`).join(', ')}; ${s.dns.threads} thread(s)`],
    ['uptime', `${s.uptimeSeconds} s`],
  ];
  const width = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n';
}

export const statusCommand: Command = {
  name: 'status',
  usage: `usage: presence-dns status
  This node at a glance: the topology revision in service, how stale it is, the database,
  the reaper lock, this cell, routes, registrations and checks.
options:
${ADMIN_OPTIONS_USAGE}`,
  options: ADMIN_OPTIONS,
  async run({ values, positionals }, io) {
    expectPositionals('status', positionals, []);
    const { body } = await (await AdminClient.for(values, io.env)).call('GET', STATUS_PATH);
    if (values.json) printJson(io, body);
    else io.out(statusText(body as Status));
    return 0;
  },
};

export const cellsCommand: Command = {
  name: 'cells',
  usage: `usage: presence-dns cells
  Every cell in the presence database, like \`consul members\`: its last heartbeat's age
  (by the database's clock), state (silent: no heartbeat for longer than its TTL), live
  instances, and which one holds the reaper lock.
options:
${ADMIN_OPTIONS_USAGE}`,
  options: ADMIN_OPTIONS,
  async run({ values, positionals }, io) {
    expectPositionals('cells', positionals, []);
    const { body } = await (await AdminClient.for(values, io.env)).call('GET', CELLS_PATH);
    if (values.json) {
      printJson(io, body);
      return 0;
    }
    const rows = [['CELL', 'ADDRESS', 'STATE', 'HEARTBEAT', 'INSTANCES', 'NOTES']];
    for (const c of (body as { cells: CellRow[] }).cells) {
      const notes = [c.self && 'this node', c.reaperHolder && 'reaper'].filter(Boolean).join(', ');
      rows.push([c.cellId, c.address ?? '-', c.state, `${c.heartbeatAgeSeconds.toFixed(1)}s ago`, String(c.instances), notes]);
    }
    io.out(table(rows));
    return 0;
  },
};
