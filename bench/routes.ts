// Route emitter cost: 10,000 routes of one cell re-published once per interval to a real
// nats-server, as the daemon does every 20 s. Reports CPU time (process.cpuUsage) and
// messages/s per round, and checks that a separate gorouter-like process received them.
//   node --import tsx bench/routes.ts [routes] [rounds]
// A child process started as `bench/routes.ts --count URL` plays gorouter: it counts
// router.register messages so its work does not land in the emitter's CPU figures.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect } from 'nats';
import { pino } from 'pino';
import { Registry } from '../src/admin/index.ts';
import { RouteEmitter } from '../src/routes/emitter.ts';
import { NatsBus } from '../src/routes/nats-bus.ts';
import { DEFAULT_REGISTER_INTERVAL_S } from '../src/routes/schedule.ts';
import { ManualClock } from '../test/helpers/manual-clock.ts';
import { startNats } from '../test/helpers/nats.ts';
import { registration, route, TestSource } from '../test/routes/fixtures.ts';

const ROUTES_PER_INSTANCE = 4;

async function countRegisters(url: string): Promise<void> {
  const nc = await connect({ servers: url });
  let count = 0;
  nc.subscribe('router.register', { callback: () => {
    count++;
  } });
  await nc.flush();
  process.stdout.write('ready\n');
  setInterval(() => process.stdout.write(`${count}\n`), 50);
}

function registrations(routes: number) {
  return Array.from({ length: Math.ceil(routes / ROUTES_PER_INSTANCE) }, (_, i) => registration({
    id: `bench-${String(i).padStart(6, '0')}`,
    ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    index: i,
    az: 'z1',
    app: `app-${i % 500}`,
    tags: { organization_id: 'org', space_id: 'space', process_type: 'web' },
    routes: Array.from({ length: ROUTES_PER_INSTANCE }, (_, r) => route(`app-${i}-${r}.apps.example.com`, { port: 61000 + r })),
  })).map((reg, i, all) => (i === all.length - 1 ? { ...reg, routes: reg.routes.slice(0, routes - i * ROUTES_PER_INSTANCE) } : reg));
}

async function main(): Promise<void> {
  const routes = Number(process.argv[2] ?? 10_000);
  const rounds = Number(process.argv[3] ?? 10);
  const nats = await startNats({ own: true });
  const counter = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--count', nats.url], { stdio: ['ignore', 'pipe', 'inherit'] });
  let received = 0;
  await new Promise<void>((resolve) => {
    counter.stdout.on('data', (d: Buffer) => {
      const lines = d.toString().trim().split('\n');
      if (lines.includes('ready')) resolve();
      const last = Number(lines.at(-1));
      if (Number.isFinite(last)) received = last;
    });
  });

  const clock = new ManualClock();
  const logger = pino({ level: 'silent' });
  const bus = new NatsBus({ nats_url: nats.url }, logger, clock);
  const source = new TestSource(registrations(routes));
  const emitter = new RouteEmitter({ source, bus, logger, metrics: new Registry(), clock });
  const connected = new Promise<void>((resolve) => bus.once('connected', () => resolve()));
  emitter.start();
  bus.start();
  await connected;
  await bus.flush(30_000);
  const untilReceived = async (n: number) => {
    while (received < n) await new Promise((r) => setTimeout(r, 20));
  };
  await untilReceived(routes);

  const figures: Array<{ cpuMs: number; wallMs: number }> = [];
  for (let i = 1; i <= rounds; i++) {
    const cpu = process.cpuUsage();
    const start = performance.now();
    clock.advance(DEFAULT_REGISTER_INTERVAL_S * 1000); // one interval tick: every route again
    await bus.flush(30_000);
    const wallMs = performance.now() - start;
    const used = process.cpuUsage(cpu);
    figures.push({ cpuMs: (used.user + used.system) / 1000, wallMs });
    await untilReceived(routes * (i + 1));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const cpuMs = median(figures.map((f) => f.cpuMs));
  const wallMs = median(figures.map((f) => f.wallMs));
  process.stdout.write([
    `route emitter: ${routes} routes, ${rounds} interval rounds, nats-server ${nats.url} (gorouter-like counter in another process received ${received})`,
    `  per round (median): CPU ${cpuMs.toFixed(1)} ms, wall ${wallMs.toFixed(1)} ms, ${Math.round(routes / (wallMs / 1000)).toLocaleString('en-US')} messages/s`,
    `  CPU share at the default ${DEFAULT_REGISTER_INTERVAL_S} s interval: ${((cpuMs / (DEFAULT_REGISTER_INTERVAL_S * 1000)) * 100).toFixed(2)} % of one core`,
    `  rounds: ${figures.map((f) => `${f.cpuMs.toFixed(0)}/${f.wallMs.toFixed(0)}`).join(' ')} (CPU ms / wall ms)`,
  ].join('\n') + '\n');
  await emitter.stop();
  await bus.close();
  counter.kill();
  await nats.stop();
}

if (process.argv[2] === '--count') void countRegisters(process.argv[3]);
else await main();
