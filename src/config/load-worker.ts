// The thread `loadConfigApart` (index.ts) runs: loads the config and answers with it, or
// with the error, then ends, taking the schema library and the YAML parser with it.
import { workerData } from 'node:worker_threads';
import { ConfigError, type LoadAnswer, type LoadOptions } from './index.ts';
import { loadConfig } from './load.ts';
import { parentThreadPort } from '../util/worker-thread.ts';

let answer: LoadAnswer;
try {
  answer = { ok: true, loaded: loadConfig(workerData as LoadOptions) };
} catch (err) {
  answer = { ok: false, message: (err as Error).message, config: err instanceof ConfigError };
}
parentThreadPort().postMessage(answer);
