// The daemon's Prometheus registry: modules ask it for counters, gauges and histograms by
// name (one instance per name, label names declared up front), and it renders them in
// the text format (exposition.ts), with the DNS worker threads' metrics folded in
// (snapshot.ts). Each label set is one series object: the DNS hot path holds the series of
// its labels (`hotCounter`/`hotHistogram`) and only bumps numbers, where finding the
// series by its labels for each of a query's three metrics would cost more than answering.
import { CONTENT_TYPE, exposition } from './exposition.ts';
import { collectProcessMetrics } from './process-metrics.ts';
import { fold, type HistogramSeries, type Labels, type MetricFamily, type MetricsSnapshot, type ValueSeries } from './snapshot.ts';

export type { MetricsSnapshot } from './snapshot.ts';

/** A hot-path counter child: `inc()` adds one to its series. */
export interface HotCounter {
  inc(): void;
}

/** A hot-path histogram child: `observe()` counts one observation in its series. */
export interface HotHistogram {
  observe(seconds: number): void;
}

/** The latency buckets (seconds) CoreDNS uses for `coredns_dns_request_duration_seconds`. */
const DEFAULT_BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** What every kind of metric shares: name, help, declared label names, and one series per label set, in the order first used. */
abstract class Metric<S extends { labels: Labels }> {
  abstract readonly type: MetricFamily['type'];
  /** By the label values in declared order, whatever order the labels were written in. */
  protected readonly series = new Map<string, S>();

  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[]) {
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name: ${name}`);
    const invalid = labelNames.find((label) => !LABEL_NAME.test(label));
    if (invalid !== undefined) throw new Error(`metric ${name}: invalid label name ${invalid}`);
  }

  /** The series of these labels, made (at zero) on first use; the hot path keeps it. */
  child(labels: Labels): S {
    for (const label in labels) {
      if (!this.labelNames.includes(label)) throw new Error(`metric ${this.name}: label ${label} is not one of [${this.labelNames.join(',')}]`);
    }
    let key = '';
    for (const label of this.labelNames) key += `${labels[label] ?? ''}\u0001`;
    let series = this.series.get(key);
    if (!series) {
      series = this.create({ ...labels });
      this.series.set(key, series);
    }
    return series;
  }

  /**
   * Brings the values read elsewhere up to date; runs before every read (scrape, snapshot,
   * `value()`). A promise when the values are read asynchronously.
   */
  collect(): Promise<void> | undefined {
    // Most metrics hold their values themselves: nothing to read.
    return undefined;
  }

  abstract family(): MetricFamily;
  protected abstract create(labels: Labels): S;
}

/** A counter or a gauge: one number per series. */
abstract class ValueMetric<S extends ValueSeries> extends Metric<S> {
  abstract override readonly type: 'counter' | 'gauge';

  family(): MetricFamily {
    return { type: this.type, name: this.name, help: this.help, series: [...this.series.values()].map(({ labels, value }) => ({ labels, value })) };
  }
}

class LiveCounterSeries implements HotCounter, ValueSeries {
  value = 0;
  constructor(readonly labels: Labels) {}
  inc(): void {
    this.value++;
  }
}

export class Counter extends ValueMetric<LiveCounterSeries> {
  readonly type = 'counter';
  private counted = 0;

  constructor(name: string, help: string, labelNames: readonly string[], private readonly total?: () => number) {
    super(name, help, labelNames);
    if (labelNames.length === 0) this.child({});
  }

  inc(value?: number): void;
  inc(labels: Labels, value?: number): void;
  inc(labelsOrValue?: Labels | number, value?: number): void {
    const [labels, by] = typeof labelsOrValue === 'object' ? [labelsOrValue, value ?? 1] : [{}, labelsOrValue ?? 1];
    if (!(by >= 0 && by < Infinity)) throw new Error(`counter ${this.name} can only go up, by a finite amount, not ${by}`);
    this.child(labels).value += by;
  }

  override collect(): undefined {
    if (!this.total) return;
    // The running total may restart from 0 (its owner was replaced): only its increases count.
    const now = this.total();
    if (now > this.counted) this.child({}).value += now - this.counted;
    this.counted = now;
  }

  protected create(labels: Labels): LiveCounterSeries {
    return new LiveCounterSeries(labels);
  }
}

export class Gauge extends ValueMetric<ValueSeries> {
  readonly type = 'gauge';

  constructor(name: string, help: string, labelNames: readonly string[], private readonly read: Pick<GaugeOptions, 'collect' | 'collectAll'>) {
    super(name, help, labelNames);
    if (labelNames.length === 0) this.child({});
  }

  set(...args: [value: number] | [labels: Labels, value: number]): void {
    if (args.length === 1) this.child({}).value = args[0];
    else this.child(args[0]).value = args[1];
  }

  override collect(): Promise<void> | undefined {
    const { collect, collectAll } = this.read;
    if (collect) this.set(collect());
    if (collectAll) return collectAll().then((values) => {
      this.series.clear();
      for (const [labels, value] of values) this.set(labels, value);
    });
  }

  protected create(labels: Labels): ValueSeries {
    return { labels, value: 0 };
  }
}

class LiveHistogramSeries implements HotHistogram {
  /** Per bucket, not cumulative; the last one counts what is above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly labels: Labels, private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const { bounds } = this;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

export class Histogram extends Metric<LiveHistogramSeries> {
  readonly type = 'histogram';

  constructor(name: string, help: string, labelNames: readonly string[], private readonly buckets: readonly number[]) {
    super(name, help, labelNames);
    if (labelNames.includes('le')) throw new Error(`histogram ${name}: le is the buckets' label`);
    if (labelNames.length === 0) this.child({});
  }

  observe(...args: [value: number] | [labels: Labels, value: number]): void {
    const [labels, value] = args.length === 1 ? [{}, args[0]] : args;
    if (!Number.isFinite(value)) throw new Error(`histogram ${this.name} observed ${value}`);
    this.child(labels).observe(value);
  }

  family(): MetricFamily {
    const series: HistogramSeries[] = [...this.series.values()].map(({ labels, counts, sum, count }) => ({ labels, counts: Array.from(counts), sum, count }));
    return { type: this.type, name: this.name, help: this.help, buckets: [...this.buckets], series };
  }

  protected create(labels: Labels): LiveHistogramSeries {
    return new LiveHistogramSeries(labels, this.buckets);
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

type AnyMetric = Counter | Gauge | Histogram;

export class Registry {
  private readonly metrics = new Map<string, AnyMetric>();
  private readonly sources: Array<() => Promise<MetricsSnapshot[]>> = [];

  readonly contentType = CONTENT_TYPE;

  /** Process metrics (CPU, RSS, open file descriptors, event-loop lag, GC, heap): the daemon turns them on once. */
  collectProcessMetrics(): void {
    collectProcessMetrics(this);
  }

  counter(name: string, help: string, options: CounterOptions = {}): Counter {
    const { labelNames = [], total } = options;
    return this.register(Counter, name, labelNames, () => new Counter(name, help, labelNames, total));
  }

  gauge(name: string, help: string, options: GaugeOptions = {}): Gauge {
    const { labelNames = [], ...read } = options;
    return this.register(Gauge, name, labelNames, () => new Gauge(name, help, labelNames, read));
  }

  histogram(name: string, help: string, options: HistogramOptions = {}): Histogram {
    const { labelNames = [], buckets = DEFAULT_BUCKETS } = options;
    return this.register(Histogram, name, labelNames, () => new Histogram(name, help, labelNames, buckets));
  }

  /** A hot-path child of a counter made here, bound to one label set. */
  hotCounter(counter: Counter, labels: Labels): HotCounter {
    if (this.metrics.get(counter.name) !== counter) throw new Error('hotCounter: the counter was not made by this registry');
    return counter.child(labels);
  }

  /** A hot-path child of a histogram made here, bound to one label set. */
  hotHistogram(histogram: Histogram, labels: Labels): HotHistogram {
    if (this.metrics.get(histogram.name) !== histogram) throw new Error('hotHistogram: the histogram was not made by this registry');
    return histogram.child(labels);
  }

  /**
   * Metrics kept in other threads (the DNS workers' counters), folded into this registry's
   * at every scrape: series of the same name and labels are summed.
   */
  addSource(source: () => Promise<MetricsSnapshot[]>): void {
    this.sources.push(source);
  }

  /** This registry's metrics as plain data, for another thread's registry to fold in. */
  async snapshot(): Promise<MetricsSnapshot> {
    const metrics = [...this.metrics.values()];
    await Promise.all(metrics.map(async (metric) => {
      await metric.collect();
    }));
    return metrics.map((metric) => metric.family());
  }

  /** The Prometheus text exposition of every metric, this thread's and its sources'. */
  async render(): Promise<string> {
    const [own, others] = await Promise.all([this.snapshot(), Promise.all(this.sources.map((source) => source()))]);
    return exposition(others.length === 0 ? own : fold([own, ...others.flat()]));
  }

  /** One series' value as a scrape would see it (a histogram's: its observation count), 0 when absent. */
  async value(name: string, labels: Labels = {}): Promise<number> {
    const metric = this.metrics.get(name);
    if (!metric) return 0;
    await metric.collect();
    const wanted = Object.entries(labels);
    const found = metric.family().series.find((series: ValueSeries | HistogramSeries) =>
      Object.keys(series.labels).length === wanted.length && wanted.every(([label, value]) => series.labels[label] === value));
    if (!found) return 0;
    return 'count' in found ? found.count : found.value;
  }

  /** One metric per name: a module asking again (with the same label names) gets the same instance. */
  private register<M extends AnyMetric>(kind: abstract new (...args: never[]) => M, name: string, labelNames: readonly string[], create: () => M): M {
    const existing = this.metrics.get(name);
    if (!existing) {
      const metric = create();
      this.metrics.set(name, metric);
      return metric;
    }
    const declared = [...existing.labelNames].sort().join(',');
    const asked = [...labelNames].sort().join(',');
    if (declared !== asked) throw new Error(`metric ${name} was declared with labels [${declared}], now asked for with [${asked}]`);
    if (!(existing instanceof kind)) throw new Error(`metric ${name} was declared as a ${existing.type}`);
    return existing;
  }
}
