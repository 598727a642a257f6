// The fault suite's summary: each scenario appends a row (report.ts) to a file in a
// directory made here; the teardown prints them as one table at the end of the run
// (`npm run test:faults`, or `npm test`, which runs the suite in its default form).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LONG, REPORT_DIR_ENV, rowsFile, type Row } from './report.ts';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'presence-faults-'));
  // Test files run in forked workers, which inherit this process's environment.
  process.env[REPORT_DIR_ENV] = dir;
  return () => {
    const file = rowsFile(dir);
    const rows = existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Row) : [];
    rmSync(dir, { recursive: true, force: true });
    if (rows.length) process.stdout.write(summaryTable(rows));
  };
}

export function summaryTable(rows: Row[]): string {
  const header = ['scenario', 'queries sent', 'failed', 'records lost', 'RSS MB', 'note'];
  const cells = rows.map((r) => [r.scenario, String(r.sent), String(r.failed), String(r.recordsLost), (r.rssBytes / 2 ** 20).toFixed(1), r.note ?? '']);
  const line = (c: string[]) => `| ${c.join(' | ')} |`;
  return [
    '',
    `Fault suite (${LONG ? 'FAULTS_LONG=1' : 'default; FAULTS_LONG=1 for the long versions'})`,
    line(header),
    line(header.map((_, n) => (n === 0 || n === header.length - 1 ? '---' : '---:'))),
    ...cells.map(line),
    '',
  ].join('\n');
}
