// The answer cache the DNS threads share: an answer one thread stores serves the others
// only while its tag's stamp holds; the log wraps over its oldest entries without ever
// serving one key's bytes for another; and threads writing and reading at once, on a log
// small enough to wrap many times a second, never see a torn answer.
import { describe, expect, it } from 'vitest';
import { AnswerCache, allocateAnswerCache, NOT_OURS } from '../../src/dns/answer-cache.ts';
import { siblingModule, startWorker } from '../../src/util/worker-thread.ts';
import { answerFor, keyFor } from './answer-cache-data.ts';

const stamps = () => new Uint32Array(1 << 16);

describe('the answer cache', () => {
  it('serves what one thread stored to another over the same buffer, while the tag\'s stamp holds', () => {
    const buffer = allocateAnswerCache(1 << 20, 2);
    const [one, other] = [new AnswerCache(buffer, 0), new AnswerCache(buffer, 1)];
    const table = stamps();
    table[7] = 3;
    const key = keyFor(1);
    expect(other.get(key, key.length, table)).toBeNull();
    one.put(key, key.length, { encodings: [answerFor(1)], tag: 7, stamp: 3 });
    expect(other.get(key, key.length, table)).toEqual(answerFor(1));
    // A shorter key with the same prefix is another key.
    expect(other.get(key, key.length - 1, table)).toBeNull();
    // The tag changed on this thread: the answer is stale here, and re-encoded.
    table[7] = 4;
    expect(other.get(key, key.length, table)).toBeNull();
    const foreign = keyFor(2);
    one.put(foreign, foreign.length, { encodings: null, tag: 0, stamp: 0 });
    expect(other.get(foreign, foreign.length, table)).toBe(NOT_OURS);
  });

  it('takes any number of threads up to 64 within its budget, each writing a log of its own', () => {
    const budget = 3 * 1024 * 1024;
    const buffer = allocateAnswerCache(budget, 3);
    expect(buffer.byteLength).toBeLessThanOrEqual(budget);
    const threads = [0, 1, 2].map((log) => new AnswerCache(buffer, log));
    for (const [n, thread] of threads.entries()) thread.put(keyFor(n), keyFor(n).length, { encodings: [answerFor(n)], tag: 0, stamp: 0 });
    for (const thread of threads) for (let n = 0; n < 3; n++) expect(thread.get(keyFor(n), keyFor(n).length, stamps())).toEqual(answerFor(n));
  });

  it('refuses a log the buffer does not have, naming it', () => {
    expect(() => allocateAnswerCache(1 << 20, 0)).toThrow('the answer cache takes 1 to 64 threads, not 0');
    expect(() => new AnswerCache(allocateAnswerCache(1 << 20, 2), 2)).toThrow('the answer cache has 2 logs; there is no log 2');
  });

  it('rotates the encodings of a shuffled answer', () => {
    const store = new AnswerCache(allocateAnswerCache(1 << 20, 1), 0);
    const key = keyFor(3);
    store.put(key, key.length, { encodings: [answerFor(10), answerFor(11), answerFor(12)], tag: 1, stamp: 0 });
    const served = Array.from({ length: 6 }, () => (store.get(key, key.length, stamps()) as Buffer).length);
    expect(served).toEqual([34, 35, 36, 34, 35, 36]);
  });

  it('wraps over the oldest answers and never serve one key\'s bytes for another', () => {
    const store = new AnswerCache(allocateAnswerCache(64 * 1024, 1), 0);
    const table = stamps();
    const keys = 5000;
    for (let n = 0; n < keys; n++) {
      const key = keyFor(n);
      store.put(key, key.length, { encodings: [answerFor(n)], tag: n, stamp: 0 });
    }
    let hits = 0;
    for (let n = 0; n < keys; n++) {
      const key = keyFor(n);
      const got = store.get(key, key.length, table);
      if (got === null) continue;
      expect(got).toEqual(answerFor(n));
      hits++;
    }
    // 64 KiB of log holds the last ~250 answers of ~250 bytes; older ones are misses.
    expect(hits).toBeGreaterThan(50);
    expect(hits).toBeLessThan(400);
    const last = keyFor(keys - 1);
    expect(store.get(last, last.length, table)).toEqual(answerFor(keys - 1));
  });

  it('never gives a torn or foreign answer to threads that write and read at once', async () => {
    // Two 64 KiB logs, each wrapping many times a second while its thread writes at full speed.
    const buffer = allocateAnswerCache(128 * 1024, 2);
    const threads = [0, 1].map((log) => startWorker(siblingModule(import.meta.url, 'answer-cache-worker'), { buffer, log, ms: 1500, keys: 2000 }));
    const counts = await Promise.all(threads.map((w) => new Promise<{ hits: number; misses: number; bad: number }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    })));
    await Promise.all(threads.map((w) => w.terminate()));
    for (const c of counts) {
      expect(c.bad).toBe(0);
      expect(c.hits).toBeGreaterThan(1000);
      expect(c.misses).toBeGreaterThan(1000);
    }
  });
});
