// The registry behind /metrics: the Prometheus text it renders (the lines prom-client
// rendered for the same metrics, which dashboards, alerts and tests read), the hot-path
// children, the fold of other threads' metrics, and the process metrics.
import { describe, expect, it } from 'vitest';
import { Registry } from '../../src/admin/metrics.ts';
import { waitFor } from '../helpers/daemon.ts';

/** The lines of one family (HELP, TYPE and its samples) in a render. */
function family(text: string, name: string): string[] {
  const block = text.split('\n\n').find((b) => b.startsWith(`# HELP ${name} `));
  return block ? block.replace(/\n$/, '').split('\n') : [];
}

describe('text exposition format', () => {
  it('renders counters, gauges and histograms with their labels, in the order they were registered and first used', async () => {
    const r = new Registry();
    const responses = r.counter('x_total', 'Xs.', { labelNames: ['rcode', 'proto'] });
    responses.inc({ rcode: 'NOERROR', proto: 'udp' });
    responses.inc({ proto: 'tcp', rcode: 'SERVFAIL' }, 2);
    responses.inc({ rcode: 'NOERROR', proto: 'udp' }, 0.5);
    r.counter('y_total', 'Ys.');
    r.counter('z_total', 'Zs, none counted yet.', { labelNames: ['to'] });
    let live = 6;
    r.gauge('g', 'G.', { collect: () => live });
    live = 7;
    r.gauge('lg', 'Labelled G.', { labelNames: ['state'] }).set({ state: 'running' }, 3);
    const duration = r.histogram('h_seconds', 'H.', { labelNames: ['proto'], buckets: [0.1, 1] });
    duration.observe({ proto: 'udp' }, 0.5);
    duration.observe({ proto: 'udp' }, 0.1);
    duration.observe({ proto: 'tcp' }, 5);
    r.histogram('u_seconds', 'Unlabelled H.', { buckets: [0.25] }).observe(0.125);
    expect(await r.render()).toBe([
      '# HELP x_total Xs.', '# TYPE x_total counter',
      'x_total{rcode="NOERROR",proto="udp"} 1.5', 'x_total{proto="tcp",rcode="SERVFAIL"} 2', '',
      '# HELP y_total Ys.', '# TYPE y_total counter', 'y_total 0', '',
      '# HELP z_total Zs, none counted yet.', '# TYPE z_total counter', '',
      '# HELP g G.', '# TYPE g gauge', 'g 7', '',
      '# HELP lg Labelled G.', '# TYPE lg gauge', 'lg{state="running"} 3', '',
      '# HELP h_seconds H.', '# TYPE h_seconds histogram',
      'h_seconds_bucket{le="0.1",proto="udp"} 1', 'h_seconds_bucket{le="1",proto="udp"} 2', 'h_seconds_bucket{le="+Inf",proto="udp"} 2',
      'h_seconds_sum{proto="udp"} 0.6', 'h_seconds_count{proto="udp"} 2',
      'h_seconds_bucket{le="0.1",proto="tcp"} 0', 'h_seconds_bucket{le="1",proto="tcp"} 0', 'h_seconds_bucket{le="+Inf",proto="tcp"} 1',
      'h_seconds_sum{proto="tcp"} 5', 'h_seconds_count{proto="tcp"} 1', '',
      '# HELP u_seconds Unlabelled H.', '# TYPE u_seconds histogram',
      'u_seconds_bucket{le="0.25"} 1', 'u_seconds_bucket{le="+Inf"} 1', 'u_seconds_sum 0.125', 'u_seconds_count 1',
      '',
    ].join('\n'));
  });

  it('escapes help text and label values, and writes special and tiny values as Prometheus reads them', async () => {
    const r = new Registry();
    r.counter('c_total', 'A \\ backslash,\na line feed and "quotes".', { labelNames: ['v'] }).inc({ v: 'a"b\\c\nd' });
    const values = r.gauge('v', 'V.', { labelNames: ['k'] });
    values.set({ k: 'nan' }, NaN);
    values.set({ k: 'inf' }, Infinity);
    values.set({ k: '-inf' }, -Infinity);
    values.set({ k: 'tiny' }, 1e-7);
    values.set({ k: 'big' }, 2 ** 40);
    const text = await r.render();
    expect(family(text, 'c_total')).toEqual(['# HELP c_total A \\\\ backslash,\\na line feed and "quotes".', '# TYPE c_total counter', 'c_total{v="a\\"b\\\\c\\nd"} 1']);
    expect(family(text, 'v').slice(2)).toEqual(['v{k="nan"} NaN', 'v{k="inf"} +Inf', 'v{k="-inf"} -Inf', 'v{k="tiny"} 1e-7', 'v{k="big"} 1099511627776']);
  });

  it('replaces every series of a collectAll gauge at each scrape', async () => {
    const r = new Registry();
    let threads: Array<[Record<string, string>, number]> = [[{ thread: 'main' }, 10], [{ thread: 'dns-1' }, 20]];
    r.gauge('heap', 'Heap.', { labelNames: ['thread'], collectAll: () => Promise.resolve(threads) });
    expect(family(await r.render(), 'heap').slice(2)).toEqual(['heap{thread="main"} 10', 'heap{thread="dns-1"} 20']);
    threads = [[{ thread: 'main' }, 11]];
    expect(family(await r.render(), 'heap').slice(2)).toEqual(['heap{thread="main"} 11']);
  });

  it('serves one metric per name, and refuses the same name with other labels or of another kind', () => {
    const r = new Registry();
    const counter = r.counter('x_total', 'Xs.', { labelNames: ['rcode', 'proto'] });
    expect(r.counter('x_total', 'Xs.', { labelNames: ['proto', 'rcode'] })).toBe(counter);
    expect(() => r.counter('x_total', 'Xs.', { labelNames: ['proto'] })).toThrow('metric x_total was declared with labels [proto,rcode], now asked for with [proto]');
    expect(() => r.gauge('x_total', 'Xs.', { labelNames: ['proto', 'rcode'] })).toThrow('metric x_total was declared as a counter');
  });

  it('refuses what Prometheus cannot take: bad names, undeclared labels, a counter going down, a non-finite observation', () => {
    const r = new Registry();
    expect(() => r.counter('bad-name', 'B.')).toThrow('invalid metric name: bad-name');
    expect(() => r.counter('c_total', 'C.', { labelNames: ['9lives'] })).toThrow('metric c_total: invalid label name 9lives');
    expect(() => r.histogram('h', 'H.', { labelNames: ['le'] })).toThrow("histogram h: le is the buckets' label");
    const counter = r.counter('ok_total', 'OK.', { labelNames: ['rcode'] });
    expect(() => counter.inc({ rcode: 'NOERROR', proto: 'udp' })).toThrow('metric ok_total: label proto is not one of [rcode]');
    expect(() => counter.inc({ rcode: 'NOERROR' }, -1)).toThrow('counter ok_total can only go up, by a finite amount, not -1');
    expect(() => r.histogram('d', 'D.').observe(NaN)).toThrow('histogram d observed NaN');
  });
});

describe('hot-path children and running totals', () => {
  it('count into the same series as ordinary increments and observations, before and after them', async () => {
    const r = new Registry();
    const requests = r.counter('req_total', 'Requests.', { labelNames: ['proto'] });
    requests.inc({ proto: 'udp' });
    const hot = r.hotCounter(requests, { proto: 'udp' });
    for (let i = 0; i < 4; i++) hot.inc();
    requests.inc({ proto: 'udp' });
    const duration = r.histogram('d_seconds', 'D.', { labelNames: ['proto'], buckets: [0.001, 0.01] });
    duration.observe({ proto: 'udp' }, 2 ** -12);
    const fast = r.hotHistogram(duration, { proto: 'udp' });
    // Powers of two: their sum is exact.
    fast.observe(2 ** -11);
    fast.observe(2 ** -8);
    fast.observe(4);
    duration.observe({ proto: 'udp' }, 2 ** -13);
    expect(family(await r.render(), 'd_seconds').slice(2)).toEqual([
      'd_seconds_bucket{le="0.001",proto="udp"} 3', 'd_seconds_bucket{le="0.01",proto="udp"} 4', 'd_seconds_bucket{le="+Inf",proto="udp"} 5',
      'd_seconds_sum{proto="udp"} 4.0047607421875', 'd_seconds_count{proto="udp"} 5',
    ]);
    // A second read counts nothing twice.
    expect(await r.value('req_total', { proto: 'udp' })).toBe(6);
    expect(await r.value('req_total', { proto: 'udp' })).toBe(6);
    expect(await r.value('d_seconds', { proto: 'udp' })).toBe(5);
    expect(await r.value('req_total', { proto: 'tcp' })).toBe(0);
  });

  it('show a hot child\'s series at 0 from the moment it is made', async () => {
    const r = new Registry();
    r.hotCounter(r.counter('responses_total', 'R.', { labelNames: ['rcode'] }), { rcode: 'NOERROR' });
    expect(family(await r.render(), 'responses_total').slice(2)).toEqual(['responses_total{rcode="NOERROR"} 0']);
  });

  it('are only made for metrics of the same registry', () => {
    const elsewhere = new Registry().counter('req_total', 'Requests.', { labelNames: ['proto'] });
    expect(() => new Registry().hotCounter(elsewhere, { proto: 'udp' })).toThrow('hotCounter: the counter was not made by this registry');
  });

  it('turn a running total kept elsewhere into a counter that only goes up, even when the total restarts from 0', async () => {
    const r = new Registry();
    let hits = 3;
    r.counter('hits_total', 'Hits.', { total: () => hits });
    expect(await r.value('hits_total')).toBe(3);
    hits = 10;
    expect(await r.value('hits_total')).toBe(10);
    hits = 4; // its owner was replaced
    expect(await r.value('hits_total')).toBe(10);
    hits = 6;
    expect(await r.value('hits_total')).toBe(12);
  });
});

describe('the fold of other threads\' metrics', () => {
  /** What a DNS worker thread counts: the same metrics as the main thread's, other series. */
  function worker(udp: number, tcpSeconds: number | null): Registry {
    const r = new Registry();
    const requests = r.counter('req_total', 'Requests.', { labelNames: ['proto', 'type'] });
    for (let i = 0; i < udp; i++) r.hotCounter(requests, { proto: 'udp', type: 'A' }).inc();
    r.gauge('tcp_connections', 'Open.', { collect: () => 1 });
    const duration = r.histogram('d_seconds', 'D.', { labelNames: ['proto'], buckets: [0.001, 0.01] });
    r.hotHistogram(duration, { proto: 'udp' }).observe(0.005);
    if (tcpSeconds !== null) {
      duration.observe({ proto: 'tcp' }, tcpSeconds);
      r.counter('worker_only_total', 'Only in workers.').inc();
    }
    return r;
  }

  it('adds counters, gauges and histogram buckets of the same name and labels; what only another thread has comes after', async () => {
    const main = worker(2, null);
    main.counter('req_total', 'Requests.', { labelNames: ['proto', 'type'] }).inc({ type: 'AAAA', proto: 'udp' });
    main.gauge('main_only', 'Only in main.', { collect: () => 5 });
    const others = [worker(3, 0.0005), worker(4, 0.5)];
    // Each snapshot crosses threads as a structured clone.
    main.addSource(async () => Promise.all(others.map(async (r) => structuredClone(await r.snapshot()))));
    expect((await main.render()).split('\n')).toEqual([
      '# HELP req_total Requests.', '# TYPE req_total counter',
      'req_total{proto="udp",type="A"} 9', 'req_total{type="AAAA",proto="udp"} 1', '',
      '# HELP tcp_connections Open.', '# TYPE tcp_connections gauge', 'tcp_connections 3', '',
      '# HELP d_seconds D.', '# TYPE d_seconds histogram',
      'd_seconds_bucket{le="0.001",proto="udp"} 0', 'd_seconds_bucket{le="0.01",proto="udp"} 3', 'd_seconds_bucket{le="+Inf",proto="udp"} 3',
      'd_seconds_sum{proto="udp"} 0.015', 'd_seconds_count{proto="udp"} 3',
      'd_seconds_bucket{le="0.001",proto="tcp"} 1', 'd_seconds_bucket{le="0.01",proto="tcp"} 1', 'd_seconds_bucket{le="+Inf",proto="tcp"} 2',
      'd_seconds_sum{proto="tcp"} 0.5005', 'd_seconds_count{proto="tcp"} 2', '',
      '# HELP main_only Only in main.', '# TYPE main_only gauge', 'main_only 5', '',
      '# HELP worker_only_total Only in workers.', '# TYPE worker_only_total counter', 'worker_only_total 2',
      '',
    ]);
    // The threads' own series are untouched by the fold: the next scrape sums the same.
    expect(family(await main.render(), 'req_total')).toContain('req_total{proto="udp",type="A"} 9');
  });

  it('renders this thread\'s metrics alone while its sources have none (no worker running)', async () => {
    const main = worker(2, null);
    const alone = await main.render();
    main.addSource(() => Promise.resolve([]));
    expect(await main.render()).toBe(alone);
  });
});

describe('process metrics', () => {
  it('are exported under prom-client\'s default names, types and order, which alerts and dashboards read', async () => {
    const r = new Registry();
    r.collectProcessMetrics();
    const types = [...(await r.render()).matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
    expect(types).toEqual([
      'process_cpu_user_seconds_total counter', 'process_cpu_system_seconds_total counter', 'process_cpu_seconds_total counter',
      'process_start_time_seconds gauge',
      'process_resident_memory_bytes gauge', 'process_virtual_memory_bytes gauge', 'process_heap_bytes gauge',
      'process_open_fds gauge', 'process_max_fds gauge',
      'nodejs_eventloop_lag_seconds gauge', 'nodejs_eventloop_lag_min_seconds gauge', 'nodejs_eventloop_lag_max_seconds gauge',
      'nodejs_eventloop_lag_mean_seconds gauge', 'nodejs_eventloop_lag_stddev_seconds gauge', 'nodejs_eventloop_lag_p50_seconds gauge',
      'nodejs_eventloop_lag_p90_seconds gauge', 'nodejs_eventloop_lag_p99_seconds gauge',
      'nodejs_active_resources gauge', 'nodejs_active_resources_total gauge',
      'nodejs_active_handles gauge', 'nodejs_active_handles_total gauge', 'nodejs_active_requests gauge', 'nodejs_active_requests_total gauge',
      'nodejs_heap_size_total_bytes gauge', 'nodejs_heap_size_used_bytes gauge', 'nodejs_external_memory_bytes gauge',
      'nodejs_heap_space_size_total_bytes gauge', 'nodejs_heap_space_size_used_bytes gauge', 'nodejs_heap_space_size_available_bytes gauge',
      'nodejs_version_info gauge',
      'nodejs_gc_duration_seconds histogram',
    ]);
  });

  it('read sane values: memory, descriptors, start time, CPU, event-loop delay, heap, version', async () => {
    const r = new Registry();
    r.collectProcessMetrics();
    let text = '';
    const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    // The event-loop delay is sampled every 10 ms: until the first sample, its minimum is V8's "none yet" (about 9.2e9 s).
    await waitFor(async () => {
      text = await r.render();
      return value('nodejs_eventloop_lag_min_seconds') < 60;
    }, 10_000, 'the event-loop delay to be sampled');
    const rss = process.memoryUsage.rss();
    expect(value('process_resident_memory_bytes')).toBeGreaterThan(rss / 2);
    expect(value('process_resident_memory_bytes')).toBeLessThan(rss * 2);
    expect(value('process_virtual_memory_bytes')).toBeGreaterThan(value('process_resident_memory_bytes'));
    expect(value('process_open_fds')).toBeGreaterThanOrEqual(3);
    expect(value('process_open_fds')).toBeLessThan(value('process_max_fds'));
    expect(Math.abs(value('process_start_time_seconds') - (Date.now() / 1000 - process.uptime()))).toBeLessThan(2);
    expect(value('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(value('process_cpu_seconds_total')).toBeCloseTo(value('process_cpu_user_seconds_total') + value('process_cpu_system_seconds_total'), 1);
    for (const stat of ['min', 'p50', 'p90', 'p99', 'max']) {
      expect(value(`nodejs_eventloop_lag_${stat}_seconds`), stat).toBeGreaterThan(0);
      expect(value(`nodejs_eventloop_lag_${stat}_seconds`), stat).toBeLessThan(60);
    }
    expect(value('nodejs_eventloop_lag_p99_seconds')).toBeGreaterThanOrEqual(value('nodejs_eventloop_lag_p50_seconds'));
    expect(value('nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(value('nodejs_heap_size_used_bytes')).toBeLessThanOrEqual(value('nodejs_heap_size_total_bytes'));
    expect(value('nodejs_heap_space_size_used_bytes{space="old"}')).toBeGreaterThan(0);
    expect(value('nodejs_active_resources_total')).toBeGreaterThan(0);
    const [major, minor, patch] = process.version.slice(1).split('.');
    expect(value(`nodejs_version_info{version="${process.version}",major="${major}",minor="${minor}",patch="${patch}"}`)).toBe(1);
  });

  it('count CPU time as it is spent', async () => {
    const r = new Registry();
    r.collectProcessMetrics();
    const before = await r.value('process_cpu_seconds_total');
    const start = process.cpuUsage();
    while (process.cpuUsage(start).user < 100_000) Math.sqrt(Math.random());
    expect(await r.value('process_cpu_seconds_total')).toBeGreaterThanOrEqual(before + 0.1);
  });

  it('time garbage collections by kind', async () => {
    const r = new Registry();
    r.collectProcessMetrics();
    const garbage: unknown[] = [];
    await waitFor(async () => {
      for (let i = 0; i < 100_000; i++) garbage[i % 1000] = { i };
      return (await r.value('nodejs_gc_duration_seconds', { kind: 'minor' })) > 0;
    }, 20_000, 'a minor GC to be observed');
    expect(family(await r.render(), 'nodejs_gc_duration_seconds')).toContain('# TYPE nodejs_gc_duration_seconds histogram');
  });
});
