// The process metrics (`process_*`, `nodejs_*`) under the names, help texts and order
// prom-client's default metrics gave them, which alerts and dashboards read: CPU, memory
// and file descriptors from the kernel, event-loop delay from perf_hooks'
// monitorEventLoopDelay, libuv's active resources, the V8 heap and its spaces, the
// Node.js version, and GC pauses by kind from a PerformanceObserver.
import { readdirSync, readFileSync } from 'node:fs';
import { constants, monitorEventLoopDelay, PerformanceObserver, type ELDHistogram } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import type { HotHistogram, Registry } from './metrics.ts';

const LINUX = process.platform === 'linux';
/** How often the event loop's delay is sampled (ms). */
const EVENT_LOOP_RESOLUTION_MS = 10;
const GC_BUCKETS = [0.001, 0.01, 0.1, 1, 2, 5];
const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};
/** libuv's handles and requests, from Node.js internals (no public API lists them by class). */
const internals = process as unknown as { _getActiveHandles?: () => object[]; _getActiveRequests?: () => object[] };

export function collectProcessMetrics(registry: Registry): void {
  cpu(registry);
  registry.gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.').set(Math.round(Date.now() / 1000 - process.uptime()));
  memory(registry);
  fileDescriptors(registry);
  eventLoop(registry);
  activeResources(registry);
  heap(registry);
  registry.gauge('nodejs_version_info', 'Node.js version info.', { labelNames: ['version', 'major', 'minor', 'patch'] })
    .set({ version: process.version, ...versionParts() }, 1);
  garbageCollection(registry);
}

function cpu(registry: Registry): void {
  registry.counter('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', { total: () => process.cpuUsage().user / 1e6 });
  registry.counter('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', { total: () => process.cpuUsage().system / 1e6 });
  registry.counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', {
    total: () => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1e6;
    },
  });
}

function memory(registry: Registry): void {
  registry.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', { collect: () => process.memoryUsage.rss() });
  if (!LINUX) return;
  registry.gauge('process_virtual_memory_bytes', 'Virtual memory size in bytes.', { collect: () => processStatusBytes('VmSize') });
  registry.gauge('process_heap_bytes', 'Process heap size in bytes.', { collect: () => processStatusBytes('VmData') });
}

/** A size from /proc/self/status (reported in kB), in bytes. */
function processStatusBytes(field: string): number {
  const kb = new RegExp(`^${field}:\\s*(\\d+)`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  return kb === undefined ? NaN : Number(kb) * 1024;
}

function fileDescriptors(registry: Registry): void {
  if (!LINUX) return;
  registry.gauge('process_open_fds', 'Number of open file descriptors.', {
    collect: () => {
      try {
        // Less the descriptor readdirSync itself had open.
        return readdirSync('/proc/self/fd').length - 1;
      } catch {
        return NaN; // out of descriptors, say: unknown rather than a stale count
      }
    },
  });
  const limit = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
  if (limit !== undefined) registry.gauge('process_max_fds', 'Maximum number of open file descriptors.').set(Number(limit));
}

function eventLoop(registry: Registry): void {
  const delay = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  delay.enable();
  // The delay's statistics since the scrape before, then the delay of one turn of the loop now.
  registry.gauge('nodejs_eventloop_lag_seconds', 'Lag of event loop in seconds.', {
    collectAll: async () => {
      for (const [gauge, read] of statistics) gauge.set(read(delay) / 1e9);
      delay.reset();
      return [[{}, await loopTurn()]];
    },
  });
  const statistic = (name: string, help: string, read: (h: ELDHistogram) => number) =>
    [registry.gauge(`nodejs_eventloop_lag_${name}_seconds`, help), read] as const;
  const statistics = [
    statistic('min', 'The minimum recorded event loop delay.', (h) => h.min),
    statistic('max', 'The maximum recorded event loop delay.', (h) => h.max),
    statistic('mean', 'The mean of the recorded event loop delays.', (h) => h.mean),
    statistic('stddev', 'The standard deviation of the recorded event loop delays.', (h) => h.stddev),
    statistic('p50', 'The 50th percentile of the recorded event loop delays.', (h) => h.percentile(50)),
    statistic('p90', 'The 90th percentile of the recorded event loop delays.', (h) => h.percentile(90)),
    statistic('p99', 'The 99th percentile of the recorded event loop delays.', (h) => h.percentile(99)),
  ];
}

/** Seconds from now until the event loop runs a callback set now. */
function loopTurn(): Promise<number> {
  const start = process.hrtime.bigint();
  return new Promise((resolve) => setImmediate(() => resolve(Number(process.hrtime.bigint() - start) / 1e9)));
}

function activeResources(registry: Registry): void {
  registry.gauge('nodejs_active_resources', 'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.', {
    labelNames: ['type'], collectAll: () => Promise.resolve(countByType(process.getActiveResourcesInfo())),
  });
  registry.gauge('nodejs_active_resources_total', 'Total number of active resources.', { collect: () => process.getActiveResourcesInfo().length });
  const { _getActiveHandles: handles, _getActiveRequests: requests } = internals;
  if (handles) {
    registry.gauge('nodejs_active_handles', 'Number of active libuv handles grouped by handle type. Every handle type is C++ class name.', {
      labelNames: ['type'], collectAll: () => Promise.resolve(countByType(handles().map((h) => h.constructor.name))),
    });
    registry.gauge('nodejs_active_handles_total', 'Total number of active handles.', { collect: () => handles().length });
  }
  if (requests) {
    registry.gauge('nodejs_active_requests', 'Number of active libuv requests grouped by request type. Every request type is C++ class name.', {
      labelNames: ['type'], collectAll: () => Promise.resolve(countByType(requests().map((r) => r.constructor.name))),
    });
    registry.gauge('nodejs_active_requests_total', 'Total number of active requests.', { collect: () => requests().length });
  }
}

function countByType(types: string[]): Array<[Record<string, string>, number]> {
  const counts = new Map<string, number>();
  for (const type of types) counts.set(type, (counts.get(type) ?? 0) + 1);
  return [...counts].map(([type, n]) => [{ type }, n]);
}

function heap(registry: Registry): void {
  registry.gauge('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', { collect: () => process.memoryUsage().heapTotal });
  registry.gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', { collect: () => process.memoryUsage().heapUsed });
  registry.gauge('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', { collect: () => process.memoryUsage().external });
  const spaces = (kind: 'total' | 'used' | 'available', read: (space: ReturnType<typeof getHeapSpaceStatistics>[number]) => number) =>
    registry.gauge(`nodejs_heap_space_size_${kind}_bytes`, `Process heap space size ${kind} from Node.js in bytes.`, {
      labelNames: ['space'],
      collectAll: () => Promise.resolve(getHeapSpaceStatistics().map((space) => [{ space: space.space_name.replace(/_space$/, '') }, read(space)])),
    });
  spaces('total', (space) => space.space_size);
  spaces('used', (space) => space.space_used_size);
  spaces('available', (space) => space.space_available_size);
}

function versionParts(): { major: string; minor: string; patch: string } {
  const [major, minor, patch] = process.version.slice(1).split('.');
  return { major, minor, patch };
}

function garbageCollection(registry: Registry): void {
  const duration = registry.histogram('nodejs_gc_duration_seconds', 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.', {
    labelNames: ['kind'], buckets: GC_BUCKETS,
  });
  const byKind = new Map<number, HotHistogram>();
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? 0;
      let series = byKind.get(kind);
      if (!series) byKind.set(kind, (series = registry.hotHistogram(duration, { kind: GC_KINDS[kind] ?? String(kind) })));
      series.observe(entry.duration / 1000);
    }
  }).observe({ entryTypes: ['gc'] });
}
