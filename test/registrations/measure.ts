// Measures the registrations module; not a test (vitest runs only *.test.ts):
//   node --import tsx test/registrations/measure.ts
// Parse cost of a full file, start with 10,000 instances in 100 files, file edit → change
// event latency, and API put latency including the atomic persist with fsync.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { Registry } from '../../src/admin/index.ts';
import { parseRegistrationFile, RegistrationSet } from '../../src/registrations/index.ts';

const entry = (id: string, i: number) => ({
  id, group: 'web', network: 'default', deployment: 'cf', az: 'z1', index: i, ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
  ports: { http: 8080 }, routes: [`h${i}.apps.example.com`, { hostname: `a${i}.example.com`, port: 9090, tls_port: 9443 }], tags: { team: 't' },
});
const yamlText = (prefix: string, n: number) => `instances:\n${Array.from({ length: n }, (_, i) => `  - ${JSON.stringify(entry(`${prefix}-${i}`, i))}\n`).join('')}`;
const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const report = (line: string) => process.stdout.write(`${line}\n`);

function timeParse(path: string, text: string): number {
  const times: number[] = [];
  for (let r = 0; r < 20; r++) {
    const start = performance.now();
    parseRegistrationFile(path, text);
    times.push(performance.now() - start);
  }
  return percentile(times, 0.5);
}

const yaml = yamlText('p', 1000);
report(`parse a 1,000-instance YAML file (${(yaml.length / 1024).toFixed(0)} KiB): median ${timeParse('big.yaml', yaml).toFixed(1)} ms`);
const json = JSON.stringify({ instances: Array.from({ length: 1000 }, (_, i) => entry(`p-${i}`, i)) });
report(`parse a 1,000-instance JSON file: median ${timeParse('big.json', json).toFixed(1)} ms`);

const dir = mkdtempSync(join(tmpdir(), 'registrations-measure-'));
for (let f = 0; f < 100; f++) writeFileSync(join(dir, `f${f}.yaml`), yamlText(`f${f}`, 100));
const set = new RegistrationSet({ dir, logger: pino({ level: 'silent' }), metrics: new Registry() });
let start = performance.now();
await set.start();
report(`start with 100 YAML files × 100 instances (${set.list().length}): ${(performance.now() - start).toFixed(0)} ms`);

const edits: number[] = [];
for (let r = 0; r < 30; r++) {
  const changed = new Promise<void>((resolve) => set.once('change', () => resolve()));
  start = performance.now();
  writeFileSync(join(dir, 'f0.yaml'), yamlText('f0', 99 + (r % 2)));
  await changed;
  edits.push(performance.now() - start);
}
report(`file edit → change event (10,000 in the set, 50 ms debounce): median ${percentile(edits, 0.5).toFixed(0)} ms, p99 ${percentile(edits, 0.99).toFixed(0)} ms`);

const puts: number[] = [];
for (let r = 0; r < 200; r++) {
  start = performance.now();
  set.put(`api-${r}`, entry(`api-${r}`, r));
  puts.push(performance.now() - start);
}
report(`API put with atomic persist + fsync (up to 200 API entries, 10,000 in the set): median ${percentile(puts, 0.5).toFixed(1)} ms, p99 ${percentile(puts, 0.99).toFixed(1)} ms`);
await set.stop();
rmSync(dir, { recursive: true });
