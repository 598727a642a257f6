// Child process of the benchmark: reads and compiles one topology file the way the
// topology worker does (file-source.ts: streamed rows into the image builder), in a
// fresh process, and prints the time taken and the RSS after it.
import { pino } from 'pino';
import { FileSource } from '../src/control/file-source.ts';
import { TopologyState } from '../src/control/state.ts';
import { required } from '../test/helpers/required.ts';

const file = process.argv[2];
const logger = pino({ level: 'silent' });
const state = new TopologyState({ domains: [], post: () => undefined, logger });
const source = new FileSource({ file, aliasesDir: `${file}.no-aliases`, state, logger });
const started = performance.now();
await source.start();
const ms = performance.now() - started;
await source.stop();
globalThis.gc?.();
await new Promise((r) => setTimeout(r, 200));
const view = required(state.current, `a topology loaded from ${file}`);
process.stdout.write(`${JSON.stringify({ ms: Math.round(ms), rssMb: Math.round(process.memoryUsage().rss / 2 ** 20), records: view.recordCount, imageMb: Math.round(view.base.byteLength / 2 ** 20) })}\n`);
