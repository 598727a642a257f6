// Child process of the benchmark: loads and compiles one topology file the way the
// topology worker does, in a fresh process, and prints the time taken and the RSS after it.
import { readFileSync } from 'node:fs';
import { compileImage } from '../src/topology/image-builder.ts';
import { TopologyImage } from '../src/topology/image.ts';
import { parseTopology } from '../src/topology/reader.ts';
import { TopologyView } from '../src/topology/view.ts';

const file = process.argv[2];
const started = performance.now();
const read = parseTopology(readFileSync(file, 'utf8'));
if (!read.ok) throw new Error(read.error);
const index = new TopologyView(new TopologyImage(compileImage(read.topology)));
const ms = performance.now() - started;
globalThis.gc?.();
process.stdout.write(`${JSON.stringify({ ms: Math.round(ms), rssMb: Math.round(process.memoryUsage().rss / 2 ** 20), records: index.recordCount })}\n`);
