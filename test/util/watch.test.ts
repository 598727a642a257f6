// The shared chokidar set-up: changes after start are reported, and a watcher error is
// handed to the caller instead of ending the process.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { watchPaths } from '../../src/util/watch.ts';

describe('watchPaths', () => {
  it('reports a file written right after it resolves, and hands errors to the caller', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-watch-'));
    const changed: string[] = [];
    const errors: Error[] = [];
    const watcher = await watchPaths(dir, { chokidar: { depth: 0 }, onChange: (path) => changed.push(path), onError: (err) => errors.push(err) });
    try {
      writeFileSync(join(dir, 'a.yaml'), 'x: 1\n');
      await expect.poll(() => changed, { timeout: 10_000 }).toContain(join(dir, 'a.yaml'));
      // Without a listener this emit would throw (an EventEmitter 'error').
      watcher.emit('error', new Error('inotify limit'));
      expect(errors.map((e) => e.message)).toEqual(['inotify limit']);
    } finally {
      await watcher.close();
    }
  });
});
