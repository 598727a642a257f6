// The Prometheus text exposition format, version 0.0.4, written as prom-client wrote it
// (dashboards, alerts and tests read these lines): HELP and TYPE before each family,
// families apart by a blank line, labels in the order they were first given, a
// histogram's `le` first, its buckets cumulative up to +Inf, then _sum and _count.
import type { Labels, MetricFamily } from './snapshot.ts';

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function exposition(families: readonly MetricFamily[]): string {
  return `${families.map(renderFamily).join('\n\n')}\n`;
}

function renderFamily(family: MetricFamily): string {
  const name = escape(family.name);
  const lines = [`# HELP ${name} ${escape(family.help)}`, `# TYPE ${name} ${family.type}`];
  if (family.type !== 'histogram') {
    for (const { labels, value } of family.series) lines.push(sample(name, labels, value));
    return lines.join('\n');
  }
  const bounds = family.buckets.map(String);
  for (const { labels, counts, sum, count } of family.series) {
    let cumulative = 0;
    bounds.forEach((le, i) => lines.push(sample(`${name}_bucket`, { le, ...labels }, (cumulative += counts[i]))));
    lines.push(sample(`${name}_bucket`, { le: '+Inf', ...labels }, count), sample(`${name}_sum`, labels, sum), sample(`${name}_count`, labels, count));
  }
  return lines.join('\n');
}

function sample(name: string, labels: Labels, value: number): string {
  const pairs = Object.entries(labels).map(([label, text]) => `${label}="${escape(text).replace(/"/g, '\\"')}"`);
  return `${name}${pairs.length ? `{${pairs.join(',')}}` : ''} ${formatValue(value)}`;
}

/** Backslashes and line feeds escaped, as HELP text and label values need (label values also escape quotes). */
function escape(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
