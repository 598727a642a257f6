// Health check cost: N instances with TCP, HTTP or command checks every second, run by
// the daemon's HealthChecks in this process for a few seconds. Reports runs/s, CPU time
// per run (process.cpuUsage, this process only), the event-loop delay the DNS thread
// would see while they run (p99, max), and the RSS the checks add.
//   node --import tsx bench/checks.ts [tcp] [http] [args] [seconds]      (default 200 200 20 10)
// The services checked live in a child process (`bench/checks.ts --serve`), so their work
// does not land in the figures.
//   node --import tsx bench/checks.ts --spawn [MB ...]                    (default 150 300)
// How long starting one command blocks the main thread at an RSS of at least MB: Node's
// spawn() (a fork of this process) against the CommandSpawner (a line to its shell).
import { spawn } from 'node:child_process';
import { CommandSpawner } from '../src/checks/spawner.ts';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Registry } from '../src/admin/index.ts';
import { HealthChecks } from '../src/checks/index.ts';
import { systemClock } from '../src/clock.ts';
import { parseRegistration } from '../src/registrations/index.ts';
import { TestSource } from '../test/presence/fixtures.ts';

async function serve(): Promise<void> {
  const tcp = createServer((socket) => socket.destroy());
  const http = createHttpServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  process.stdout.write(`${(tcp.address() as AddressInfo).port} ${(http.address() as AddressInfo).port}\n`);
}

async function main(): Promise<void> {
  const [tcpCount, httpCount, argsCount, seconds] = [200, 200, 20, 10].map((d, i) => Number(process.argv[2 + i] ?? d));
  const server = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [tcpPort, httpPort] = await new Promise<number[]>((resolve) => server.stdout.once('data', (d: Buffer) => resolve(d.toString().trim().split(' ').map(Number))));
  const entry = (i: number, check: Record<string, unknown>) => parseRegistration({
    id: `bench-${i}`, group: 'web', network: 'default', deployment: 'cf', ip: `10.0.${i >> 8}.${i & 255}`, check: { interval: 1, timeout: 1, ...check },
  }, 'bench');
  let n = 0;
  const registrations = [
    ...Array.from({ length: tcpCount }, () => entry(n++, { tcp: `127.0.0.1:${tcpPort}` })),
    ...Array.from({ length: httpCount }, () => entry(n++, { http: `http://127.0.0.1:${httpPort}/health` })),
    ...Array.from({ length: argsCount }, () => entry(n++, { args: ['true'] })),
  ];
  const source = new TestSource();
  source.set(registrations);
  const metrics = new Registry();
  // The same measurement with no checks first: what the process and the delay monitor cost alone.
  const idle = await measure(seconds);
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const heapBefore = process.memoryUsage().heapUsed;
  const checks = new HealthChecks({ source, clock: systemClock, logger: pino({ level: 'silent' }), metrics });
  checks.start();
  // The first second spreads the first runs; measure after it.
  await new Promise((r) => setTimeout(r, 1500));
  const runs = async () => {
    let total = 0;
    for (const kind of ['tcp', 'http', 'args']) for (const result of ['passed', 'failed']) total += await metrics.value('presence_dns_check_runs_total', { kind, result });
    return total;
  };
  const runsBefore = await runs();
  const busy = await measure(seconds);
  const ran = (await runs()) - runsBefore;
  const failed = await metrics.value('presence_dns_checks', { state: 'failing' });
  const rssMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
  global.gc?.();
  const heapMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  await checks.stop();
  server.kill();
  const cpuMs = busy.cpuMs - idle.cpuMs;
  const ms = (ns: number) => (ns / 1e6).toFixed(2);
  process.stdout.write(`${tcpCount} tcp + ${httpCount} http + ${argsCount} args checks every 1 s, ${seconds} s measured (load average ${loadavg()[0].toFixed(1)})\n`);
  process.stdout.write(`  runs/s ${(ran / seconds).toFixed(0)} (expected ≤ ${registrations.length}); failing ${failed}\n`);
  process.stdout.write(`  CPU ${(cpuMs / seconds / 10).toFixed(1)} % of a core above idle; ${(cpuMs / ran * 1000).toFixed(0)} µs per run\n`);
  process.stdout.write(`  event-loop delay p99 ${ms(busy.p99)} ms, max ${ms(busy.max)} ms (idle: ${ms(idle.p99)}, ${ms(idle.max)})\n`);
  process.stdout.write(`  RSS +${rssMb.toFixed(1)} MB${global.gc ? `, heap after GC +${heapMb.toFixed(1)} MB` : ' (--expose-gc for the heap kept)'}\n`);
}

/** CPU time of this process and the event-loop delay over `seconds`. */
async function measure(seconds: number): Promise<{ cpuMs: number; p99: number; max: number }> {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  const before = process.cpuUsage();
  delay.enable();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  delay.disable();
  const cpu = process.cpuUsage(before);
  return { cpuMs: (cpu.user + cpu.system) / 1000, p99: delay.percentile(99), max: delay.max };
}

async function spawnCost(mbs: number[]): Promise<void> {
  const median = (times: number[]) => times.sort((x, y) => x - y)[times.length >> 1].toFixed(2);
  const held: Buffer[] = [];
  for (const mb of mbs) {
    held.push(Buffer.alloc(Math.max(0, mb - process.memoryUsage().rss / 2 ** 20) * 2 ** 20, 1));
    const spawner = new CommandSpawner();
    const direct: number[] = [];
    const viaShell: number[] = [];
    for (let i = 0; i < 30; i++) {
      let t = performance.now();
      const child = spawn('true', [], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      direct.push(performance.now() - t);
      await new Promise((resolve) => child.once('close', resolve));
      t = performance.now();
      const done = new Promise((resolve) => spawner.run(['true'], resolve));
      viaShell.push(performance.now() - t);
      await done;
    }
    spawner.stop();
    process.stdout.write(`RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB: main thread blocked per command started, median of 30: spawn() ${median(direct)} ms, CommandSpawner ${median(viaShell)} ms (load average ${loadavg()[0].toFixed(1)})\n`);
  }
}

if (process.argv[2] === '--serve') void serve();
else if (process.argv[2] === '--spawn') void spawnCost(process.argv.length > 3 ? process.argv.slice(3).map(Number) : [150, 300]);
else void main();
