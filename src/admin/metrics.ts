// A small Prometheus registry: counters, gauges and histograms with labels, rendered in
// the text exposition format. Kept tiny and allocation-free on increment because the DNS
// hot path counts every query.

type Labels = Record<string, string>;

function labelKey(labels: Labels | undefined): string {
  if (!labels) return '';
  const parts = Object.keys(labels).sort().map((k) => `${k}="${labels[k].replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

interface Metric {
  render(): string[];
}

export class Counter implements Metric {
  private readonly values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}

  inc(labels?: Labels, by = 1): void {
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }

  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }

  /** A child bound to fixed labels: inc() skips building the label key, for hot paths. */
  labels(labels: Labels): { inc(by?: number): void } {
    const key = labelKey(labels);
    if (!this.values.has(key)) this.values.set(key, 0);
    const values = this.values;
    return { inc: (by = 1) => values.set(key, values.get(key)! + by) };
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const [key, v] of this.values) lines.push(`${this.name}${key} ${v}`);
    return lines;
  }
}

export class Gauge implements Metric {
  private readonly values = new Map<string, number>();
  private collector: (() => number) | null = null;
  constructor(readonly name: string, readonly help: string) {}

  set(value: number, labels?: Labels): void {
    this.values.set(labelKey(labels), value);
  }

  get(labels?: Labels): number {
    return this.collector && !labels ? this.collector() : (this.values.get(labelKey(labels)) ?? 0);
  }

  /** Computes the (unlabelled) value at scrape time, e.g. seconds since the last sync. */
  collect(fn: () => number): void {
    this.collector = fn;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    if (this.collector) lines.push(`${this.name} ${this.collector()}`);
    else if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const [key, v] of this.values) lines.push(`${this.name}${key} ${v}`);
    return lines;
  }
}

const DEFAULT_BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];

export class Histogram implements Metric {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(readonly name: string, readonly help: string, readonly buckets: number[] = DEFAULT_BUCKETS) {}

  observe(seconds: number, labels?: Labels): void {
    this.record(this.seriesOf(labelKey(labels)), seconds);
  }

  /** A child bound to fixed labels: observe() skips building the label key, for hot paths. */
  labels(labels: Labels): { observe(seconds: number): void } {
    const s = this.seriesOf(labelKey(labels));
    return { observe: (seconds) => this.record(s, seconds) };
  }

  private seriesOf(key: string): { counts: number[]; sum: number; count: number } {
    let s = this.series.get(key);
    if (!s) {
      s = { counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    return s;
  }

  private record(s: { counts: number[]; sum: number; count: number }, seconds: number): void {
    for (let i = 0; i < this.buckets.length; i++) if (seconds <= this.buckets[i]) s.counts[i]++;
    s.sum += seconds;
    s.count++;
  }

  count(labels?: Labels): number {
    return this.series.get(labelKey(labels))?.count ?? 0;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [key, s] of this.series) {
      const inner = key.slice(1, -1);
      const withLe = (le: string) => `{${inner ? `${inner},` : ''}le="${le}"}`;
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket${withLe(String(b))} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket${withLe('+Inf')} ${s.count}`, `${this.name}_sum${key} ${s.sum}`, `${this.name}_count${key} ${s.count}`);
    }
    return lines;
  }
}

export class Registry {
  private readonly metrics = new Map<string, Metric>();

  counter(name: string, help: string): Counter {
    return this.register(name, () => new Counter(name, help)) as Counter;
  }

  gauge(name: string, help: string): Gauge {
    return this.register(name, () => new Gauge(name, help)) as Gauge;
  }

  histogram(name: string, help: string, buckets?: number[]): Histogram {
    return this.register(name, () => new Histogram(name, help, buckets)) as Histogram;
  }

  render(): string {
    return [...this.metrics.values()].flatMap((m) => m.render()).join('\n') + '\n';
  }

  /** One metric per name: a module asking again gets the same instance. */
  private register(name: string, create: () => Metric): Metric {
    let metric = this.metrics.get(name);
    if (!metric) {
      metric = create();
      this.metrics.set(name, metric);
    }
    return metric;
  }
}
