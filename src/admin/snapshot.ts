// A registry's metrics as plain data (what a scrape renders, and what a DNS worker thread
// posts to the main thread), and the fold that sums the snapshots of several threads into
// one: series of the same name and labels are added, as one process's totals.

export type Labels = Record<string, string>;

export interface ValueSeries {
  labels: Labels;
  value: number;
}

export interface HistogramSeries {
  labels: Labels;
  /** Observations per bucket, not cumulative; the last one counts those above every bound (+Inf). */
  counts: number[];
  sum: number;
  count: number;
}

export type MetricFamily =
  | { type: 'counter' | 'gauge'; name: string; help: string; series: ValueSeries[] }
  | { type: 'histogram'; name: string; help: string; buckets: number[]; series: HistogramSeries[] };

/** One registry's metrics, in the order they were registered. */
export type MetricsSnapshot = MetricFamily[];

/**
 * The snapshots summed: counters, gauges and histogram buckets of the same name and labels
 * are added. Families and series keep the order they first appear in, so the first
 * snapshot's (the main thread's) come first. Every thread runs the same code, so a
 * histogram has the same buckets in each.
 */
export function fold(snapshots: readonly MetricsSnapshot[]): MetricsSnapshot {
  const families = new Map<string, { family: MetricFamily; series: Map<string, ValueSeries | HistogramSeries> }>();
  for (const snapshot of snapshots) {
    for (const family of snapshot) {
      let into = families.get(family.name);
      if (!into) {
        into = { family: { ...family, series: [] }, series: new Map() };
        families.set(family.name, into);
      }
      for (const series of family.series) add(into, series);
    }
  }
  return [...families.values()].map(({ family }) => family);
}

function add(into: { family: MetricFamily; series: Map<string, ValueSeries | HistogramSeries> }, series: ValueSeries | HistogramSeries): void {
  const key = labelsKey(series.labels);
  const existing = into.series.get(key);
  if (!existing) {
    const copy = 'counts' in series ? { ...series, counts: [...series.counts] } : { ...series };
    into.series.set(key, copy);
    (into.family.series as Array<ValueSeries | HistogramSeries>).push(copy);
  } else if ('counts' in existing && 'counts' in series) {
    series.counts.forEach((n, i) => (existing.counts[i] += n));
    existing.sum += series.sum;
    existing.count += series.count;
  } else if ('value' in existing && 'value' in series) {
    existing.value += series.value;
  }
}

/** The same string for equal label sets, whatever order their names were written in. */
function labelsKey(labels: Labels): string {
  return JSON.stringify(Object.keys(labels).sort().map((name) => [name, labels[name]]));
}
