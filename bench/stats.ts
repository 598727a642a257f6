// Order statistics shared by the benchmarks.

export interface Quantiles {
  n: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

/** Nearest-rank quantiles of `samples` (NaN for an empty list). */
export function quantiles(samples: number[]): Quantiles {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), p999: at(0.999), max: sorted[sorted.length - 1] ?? NaN };
}
