// Child process of the churn benchmark: the paced probe of test/helpers/probe.ts (one
// query every PROBE_INTERVAL_MS, 1 s to answer) for PROBE_SECONDS (or until SIGTERM), in
// a process of its own so the parent's work (writing big files) cannot delay it. Prints
// one JSON line.
import { readFileSync } from 'node:fs';
import { Probe } from '../test/helpers/probe.ts';
import { quantiles } from './stats.ts';

const [port, namesFile] = process.argv.slice(2);
const names = readFileSync(namesFile, 'utf8').trim().split('\n');
const seconds = Number(process.env.PROBE_SECONDS ?? 60);
const probe = new Probe(Number(port), names, { intervalMs: Number(process.env.PROBE_INTERVAL_MS ?? 5) }).start();
process.stdout.write('probing\n');
await new Promise((r) => {
  const timer = setTimeout(r, seconds * 1000);
  process.once('SIGTERM', () => {
    clearTimeout(timer);
    r(undefined);
  });
});
const seen = await probe.stop();
const q = quantiles(seen.latencies);
process.stdout.write(`${JSON.stringify({ sent: seen.sent, unanswered: seen.unanswered, wrong: seen.wrong.length, p50: q.p50, p99: q.p99, p999: q.p999, max: q.max })}\n`);
