// Starting a worker thread from a module beside the caller. The daemon ships as compiled
// JavaScript, where the module is a `.js` file Node runs as is; tests and benches run the
// TypeScript sources, where the worker needs the same loader (tsx, a dev dependency).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker, type Transferable } from 'node:worker_threads';

export function startWorker(url: URL, workerData: unknown, transferList: Transferable[] = []): Worker {
  const typescript = url.pathname.endsWith('.ts');
  return new Worker(url, { workerData, transferList, execArgv: typescript ? ['--import', 'tsx'] : [] });
}

/** The URL of `name` (without extension) beside `importMetaUrl`, in the caller's own flavour (.ts or .js). */
export function siblingModule(importMetaUrl: string, name: string): URL {
  return new URL(`./${name}${importMetaUrl.endsWith('.ts') ? '.ts' : '.js'}`, importMetaUrl);
}

let gc: (() => void) | null = null;

/**
 * A full garbage collection now. The topology worker calls it after an O(topology) piece
 * of work (a file read, a compaction): it then sits idle, and V8 would keep the garbage —
 * the file's bytes, the builder's columns, hundreds of MB at 600 k instances — resident
 * until something else made it collect.
 */
export function collectGarbage(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}
