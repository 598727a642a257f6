// One thread of the answer cache's race test (answer-cache.test.ts): for `ms`, asks the
// shared cache for random keys, checks every answer it gets against what that key's
// writer stored, and stores the answer itself on a miss. Reports hits, misses and bad
// answers (torn, or another key's).
import { workerData } from 'node:worker_threads';
import { AnswerCache, NOT_OURS } from '../../src/dns/answer-cache.ts';
import { parentThreadPort } from '../../src/util/worker-thread.ts';
import { answerFor, keyFor } from './answer-cache-data.ts';

const { buffer, log, ms, keys } = workerData as { buffer: SharedArrayBuffer; log: number; ms: number; keys: number };
const store = new AnswerCache(buffer, log);
const stamps = new Uint32Array(1 << 16);
const counts = { hits: 0, misses: 0, bad: 0 };
const until = performance.now() + ms;
while (performance.now() < until) {
  for (let i = 0; i < 1000; i++) {
    const n = Math.floor(Math.random() * keys);
    const key = keyFor(n);
    const got = store.get(key, key.length, stamps);
    if (got === null) {
      counts.misses++;
      store.put(key, key.length, { encodings: [answerFor(n)], tag: n, stamp: 0 });
    } else if (got === NOT_OURS || !got.equals(answerFor(n))) counts.bad++;
    else counts.hits++;
  }
}
parentThreadPort().postMessage(counts);
