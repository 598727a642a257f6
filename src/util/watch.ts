// Watching files with chokidar the same way everywhere: an error listener is always
// attached (without one, a watcher error such as an inotify limit is thrown and ends the
// process), and the watcher is handed back only once its first scan is done, so no
// change made after start is missed. Debouncing stays with each caller: what a burst of
// events means differs (a topology file, a directory of registrations, resolv.conf).
import { watch, type ChokidarOptions, type FSWatcher } from 'chokidar';

export interface WatchOptions {
  /** Extra chokidar options; `ignoreInitial` is always on. */
  chokidar?: ChokidarOptions;
  /** Any add, change or unlink under the paths (the path chokidar reports). */
  onChange(path: string): void;
  onError(err: Error): void;
}

export async function watchPaths(paths: string | string[], options: WatchOptions): Promise<FSWatcher> {
  const watcher = watch(paths, { ...options.chokidar, ignoreInitial: true });
  watcher.on('all', (_event: string, path: string) => options.onChange(path));
  watcher.on('error', (err: unknown) => options.onError(err as Error));
  await new Promise<void>((ready) => watcher.once('ready', () => ready()));
  return watcher;
}
