// Starting a worker thread from a module beside the caller. The daemon ships as compiled
// JavaScript, where the module is a `.js` file Node runs as is; tests and benches run the
// TypeScript sources, where the worker needs the same loader (tsx, a dev dependency). The
// threads running are kept by name, so the heap of each can be read (`threadHeaps`).
import { getHeapStatistics, setFlagsFromString, type HeapInfo } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { isMainThread, parentPort, Worker, type MessagePort, type Transferable } from 'node:worker_threads';

/** The worker threads running, by the part of the daemon each is (for the per-thread memory metrics). */
const running = new Map<Worker, string>();

/** Starts a worker thread running `url`; `thread` names it in the per-thread memory metrics ("topology", "dns-2", …). */
export function startWorker(url: URL, workerData: unknown, transferList: Transferable[] = [], thread = 'worker'): Worker {
  const typescript = url.pathname.endsWith('.ts');
  const worker = new Worker(url, { workerData, transferList, execArgv: typescript ? ['--import', 'tsx'] : [] });
  running.set(worker, thread);
  worker.once('exit', () => running.delete(worker));
  return worker;
}

export interface ThreadHeap {
  thread: string;
  /** V8's heap in use and reserved, and memory its objects hold outside it (array buffers: a PGlite's, for one). */
  used: number;
  total: number;
  external: number;
}

/** The heap of this thread ("main") and of every worker thread running, for the memory metrics and the footprint bench. */
export async function threadHeaps(): Promise<ThreadHeap[]> {
  const of = (thread: string, s: HeapInfo): ThreadHeap => ({ thread, used: s.used_heap_size, total: s.total_heap_size, external: s.external_memory });
  const workers = await Promise.all([...running].map(async ([worker, thread]) => {
    try {
      return of(thread, await worker.getHeapStatistics());
    } catch {
      // Exited meanwhile.
      return null;
    }
  }));
  return [of('main', getHeapStatistics()), ...workers.filter((w): w is ThreadHeap => w !== null)];
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
  // On the DNS thread (a small topology read there, control/host.ts) the garbage is small,
  // and a full collection would stall answers: V8 collects it as it goes.
  if (isMainThread) return;
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}

/** The port to the thread that started this module as a worker (`startWorker`). */
export function parentThreadPort(): MessagePort {
  if (parentPort === null) throw Object.assign(new Error('this module runs as a worker thread (startWorker), not as the main thread'), { code: 'NOT_A_WORKER' });
  return parentPort;
}
