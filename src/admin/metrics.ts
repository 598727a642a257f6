// The daemon's Prometheus registry, on prom-client: modules ask it for counters, gauges
// and histograms by name (one instance per name, label names declared up front), and
// prom-client renders the exposition. The DNS hot path counts every query, and a
// prom-client label child hashes its labels on every call (about 1 µs per query for a
// query's three series), so the hot path uses `hotCounter`/`hotHistogram` children: plain numbers,
// folded into the prom-client metric when it is collected (a scrape, or `value()`).
import { createRequire } from 'node:module';
import type promClient from 'prom-client';

// prom-client's index also loads its Pushgateway (https, zlib) and summaries: about 80 ms
// and 5 MB of a daemon that should answer within 0.5 s of start. Only the parts used here
// are loaded, from the files the index itself requires (lib/cluster, for aggregating the
// DNS workers' registries, loads node:cluster only when asked to talk to a cluster).
const require = createRequire(import.meta.url);
const client = {
  Registry: require('prom-client/lib/registry') as typeof promClient.Registry,
  Counter: require('prom-client/lib/counter') as typeof promClient.Counter,
  Gauge: require('prom-client/lib/gauge') as typeof promClient.Gauge,
  Histogram: require('prom-client/lib/histogram') as typeof promClient.Histogram,
  AggregatorRegistry: require('prom-client/lib/cluster') as typeof promClient.AggregatorRegistry,
  collectDefaultMetrics: require('prom-client/lib/defaultMetrics') as typeof promClient.collectDefaultMetrics,
};

export type Counter = promClient.Counter;
/** A registry's metrics as plain data, which can cross threads and be folded into another registry. */
export type MetricsSnapshot = promClient.MetricObjectWithValues<promClient.MetricValue<string>>[];
export type Gauge = promClient.Gauge;
export type Histogram = promClient.Histogram;
type Labels = Record<string, string>;

/** A hot-path counter child: `inc()` adds to a plain number until the next collection. */
export interface HotCounter {
  inc(): void;
}

/** A hot-path histogram child: `observe()` fills plain bucket counts until the next collection. */
export interface HotHistogram {
  observe(seconds: number): void;
}

/** The latency buckets (seconds) CoreDNS uses for `coredns_dns_request_duration_seconds`. */
const DEFAULT_BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];

class PendingCount implements HotCounter {
  pending = 0;
  constructor(readonly labels: Labels) {}
  inc(): void {
    this.pending++;
  }
}

/** Observations waiting to be merged into their histogram's series: counts per bucket (the last is +Inf) and their sum. */
class PendingObservations implements HotHistogram {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly labels: Labels, private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(seconds: number): void {
    const { bounds } = this;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]) i++;
    this.counts[i]++;
    this.sum += seconds;
    this.count++;
  }
  /** Observations at or below `le` ("+Inf": all), as a histogram's cumulative bucket counts them. */
  cumulative(le: string | number): number {
    if (le === '+Inf') return this.count;
    let total = 0;
    for (let i = 0; i < this.bounds.length && this.bounds[i] <= Number(le); i++) total += this.counts[i];
    return total;
  }
}

/**
 * What the prom-client registry renders for a histogram with hot children: prom-client's
 * own histogram (which takes `observe(labels, v)` off the hot path) with each hot child's
 * counts added to the series of its labels. prom-client has no way to add many
 * observations at once, so they are merged when read instead of replayed one by one.
 */
class MergedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly hot: PendingObservations[] = [];
  constructor(readonly name: string, readonly help: string, readonly inner: Histogram, readonly buckets: readonly number[]) {}

  async get(): Promise<promClient.MetricObjectWithValues<promClient.MetricValueWithName<string>>> {
    const data = await this.inner.get();
    for (const series of data.values) {
      const child = this.hot.find((c) => sameLabels(series.labels, c.labels));
      if (!child) continue;
      if (series.metricName === `${this.name}_bucket`) series.value += child.cumulative(series.labels.le ?? '+Inf');
      else if (series.metricName === `${this.name}_sum`) series.value += child.sum;
      else if (series.metricName === `${this.name}_count`) series.value += child.count;
    }
    return data;
  }

  reset(): void {
    this.inner.reset();
    for (const child of this.hot) {
      child.counts.fill(0);
      child.sum = 0;
      child.count = 0;
      this.inner.zero(child.labels);
    }
  }
}

export interface CounterOptions {
  labelNames?: readonly string[];
  /** Reads a running total kept elsewhere (e.g. a cache's hit count) at scrape time. */
  total?: () => number;
}

export interface GaugeOptions {
  labelNames?: readonly string[];
  /** Computes the (unlabelled) value at scrape time, e.g. seconds since the last sync. */
  collect?: () => number;
  /** Computes every labelled value at scrape time (replacing the series of the scrape before). */
  collectAll?: () => Promise<Array<[Labels, number]>>;
}

export interface HistogramOptions {
  labelNames?: readonly string[];
  buckets?: readonly number[];
}

export class Registry {
  private readonly registry = new client.Registry();
  /** Per metric name: its declared label names, and the hot children that fold into it. */
  private readonly declared = new Map<string, string>();
  private readonly hotCounters = new Map<Counter, PendingCount[]>();
  private readonly histograms = new Map<Histogram, MergedHistogram>();
  private readonly sources: Array<() => Promise<MetricsSnapshot[]>> = [];

  readonly contentType = this.registry.contentType;

  /** Process metrics (CPU, RSS, open file descriptors, event-loop lag, GC, heap): the daemon turns them on once. */
  collectProcessMetrics(): void {
    client.collectDefaultMetrics({ register: this.registry });
  }

  counter(name: string, help: string, options: CounterOptions = {}): Counter {
    const { labelNames = [], total } = options;
    return this.register(name, labelNames, () => {
      const pending: PendingCount[] = [];
      let counted = 0;
      const counter = new client.Counter({
        name, help, labelNames, registers: [this.registry],
        collect() {
          for (const child of pending) {
            if (child.pending === 0) continue;
            this.inc(child.labels, child.pending);
            child.pending = 0;
          }
          const now = total?.() ?? counted;
          if (now > counted) this.inc(now - counted);
          counted = now;
        },
      });
      this.hotCounters.set(counter, pending);
      return counter;
    });
  }

  gauge(name: string, help: string, options: GaugeOptions = {}): Gauge {
    const { collect, collectAll, labelNames = [] } = options;
    return this.register(name, labelNames, () => new client.Gauge({
      name, help, labelNames, registers: [this.registry],
      ...(collect ? { collect() { this.set(collect()); } } : {}),
      ...(collectAll ? {
        async collect() {
          const values = await collectAll();
          this.reset();
          for (const [labels, value] of values) this.set(labels, value);
        },
      } : {}),
    }));
  }

  histogram(name: string, help: string, options: HistogramOptions = {}): Histogram {
    const { labelNames = [], buckets = DEFAULT_BUCKETS } = options;
    const existing = this.existing(name, labelNames);
    if (existing) return (existing as MergedHistogram).inner;
    const inner = new client.Histogram({ name, help, labelNames, buckets: [...buckets], registers: [] });
    const merged = new MergedHistogram(name, help, inner, buckets);
    this.histograms.set(inner, merged);
    this.registry.registerMetric(merged as unknown as promClient.Metric);
    return inner;
  }

  /** A hot-path child of a counter made here, bound to one label set. */
  hotCounter(counter: Counter, labels: Labels): HotCounter {
    const children = this.hotCounters.get(counter);
    if (!children) throw new Error('hotCounter: the counter was not made by this registry');
    const child = new PendingCount(labels);
    counter.inc(labels, 0);
    children.push(child);
    return child;
  }

  /** A hot-path child of a histogram made here, bound to one label set. */
  hotHistogram(histogram: Histogram, labels: Labels): HotHistogram {
    const merged = this.histograms.get(histogram);
    if (!merged) throw new Error('hotHistogram: the histogram was not made by this registry');
    const child = new PendingObservations(labels, merged.buckets);
    histogram.zero(labels);
    merged.hot.push(child);
    return child;
  }

  /**
   * Metrics kept in other threads (the DNS workers' counters), folded into this registry's
   * at every scrape: series of the same name and labels are summed.
   */
  addSource(source: () => Promise<MetricsSnapshot[]>): void {
    this.sources.push(source);
  }

  /** This registry's metrics as plain data, for another thread's registry to fold in. */
  snapshot(): Promise<MetricsSnapshot> {
    return this.registry.getMetricsAsJSON();
  }

  /** The Prometheus text exposition of every metric. */
  async render(): Promise<string> {
    if (this.sources.length === 0) return this.registry.metrics();
    const others = (await Promise.all(this.sources.map((s) => s()))).flat();
    return client.AggregatorRegistry.aggregate([await this.registry.getMetricsAsJSON(), ...others]).metrics();
  }

  /** One series' value as a scrape would see it (a histogram's: its observation count), 0 when absent. */
  async value(name: string, labels: Labels = {}): Promise<number> {
    const metric = this.registry.getSingleMetric(name);
    if (!metric) return 0;
    const data = await metric.get();
    const values = data.values as Array<promClient.MetricValueWithName<string>>;
    const wanted = String(data.type) === 'histogram' ? `${name}_count` : undefined;
    const series = values.find((v) => v.metricName === wanted && sameLabels(v.labels, labels));
    return series?.value ?? 0;
  }

  /** The metric already registered under `name`, if its declared labels are the same; null when there is none. */
  private existing(name: string, labelNames: readonly string[]): promClient.Metric | MergedHistogram | null {
    const declared = [...labelNames].sort().join(',');
    const metric = this.registry.getSingleMetric(name);
    if (!metric) {
      this.declared.set(name, declared);
      return null;
    }
    if (this.declared.get(name) !== declared) {
      throw new Error(`metric ${name} was declared with labels [${this.declared.get(name)}], now asked for with [${declared}]`);
    }
    return metric;
  }

  /** One metric per name: a module asking again gets the same instance. */
  private register<M extends Counter | Gauge>(name: string, labelNames: readonly string[], create: () => M): M {
    return (this.existing(name, labelNames) as M | null) ?? create();
  }
}

function sameLabels(a: Partial<Record<string, string | number>>, b: Labels): boolean {
  const keys = Object.keys(a).filter((k) => k !== 'le');
  return keys.length === Object.keys(b).length && keys.every((k) => String(a[k]) === b[k]);
}
