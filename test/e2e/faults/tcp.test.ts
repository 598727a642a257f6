// TCP abuse of the running daemon under a steady UDP load: thousands of connections that
// send garbage (1,000; 10,000 with FAULTS_LONG=1), then more slow, silent and half-open
// clients than the connection cap. Open connections stay at the cap (the least recently
// active evicted), every abusive connection is closed by the idle timeout (10 s; nothing
// else closes a client that never finishes a query), RSS grows by 20 MB at most, UDP
// answers every query (0 failed, 0 records lost), and dig over TCP still works.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { addresses, dig } from '../../helpers/dig.ts';
import { waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import { MAX_TCP_CONNECTIONS, TCP_IDLE_MS } from '../../../src/dns/server.ts';
import { metric } from '../../presence/daemons.ts';
import { daemonRss, expectNothingLost, ONE_INSTANCE, reportSeen, size, sleep, startOneInstanceDaemon, Watch } from './report.ts';

const GARBAGE_CONNECTIONS = size(1000, 10_000);
const MAX_RSS_GROWTH = 20 * 2 ** 20;
const NAME = ONE_INSTANCE.name;
const EXPECTED = new Map([[NAME, [ONE_INSTANCE.ip]]]);
let daemon: RunningDaemon;

beforeAll(async () => {
  daemon = await startOneInstanceDaemon();
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

/** A seeded stream of bytes, so a failure replays. */
function garbage(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed | 1;
  for (let n = 0; n < length; n++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[n] = x & 0xff;
  }
  return out;
}

/** Opens a connection and resolves once it is connected; `closed` resolves when either side closes it. */
function open(): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(daemon.dnsPort, '127.0.0.1');
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

/** The largest value of the daemon's open-connection gauge seen while `run` ran. */
async function peakConnections(run: () => Promise<void>): Promise<number> {
  let peak = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      peak = Math.max(peak, await metric(daemon, 'presence_dns_tcp_connections'));
      await sleep(50);
    }
  })();
  try {
    await run();
  } finally {
    watching = false;
    await watcher;
  }
  return peak;
}

it(`${GARBAGE_CONNECTIONS} garbage TCP connections: bounded, no crash, RSS growth ≤ 20 MB, UDP unaffected`, async () => {
  const watch = new Watch({ daemons: [daemon], expected: EXPECTED, load: { intervalMs: 2 } });
  const rssBefore = daemonRss(daemon);
  const peak = await peakConnections(async () => {
    // 50 at a time: each sends 1-2,000 bytes of garbage, some of them framed as 64 KiB messages never finished.
    for (let n = 0; n < GARBAGE_CONNECTIONS; n += 50) {
      await Promise.all(Array.from({ length: Math.min(50, GARBAGE_CONNECTIONS - n) }, async (_, k) => {
        const { socket, closed } = await open();
        socket.write(garbage(n + k, 1 + ((n + k) % 2000)));
        socket.end();
        await Promise.race([closed, sleep(TCP_IDLE_MS + 2000)]);
        socket.destroy();
      }));
    }
  });
  const seen = await watch.stop();
  const rssGrowth = daemonRss(daemon) - rssBefore;
  reportSeen(`${GARBAGE_CONNECTIONS.toLocaleString('en')} garbage TCP connections`, seen, daemonRss(daemon),
    `RSS growth ${(rssGrowth / 2 ** 20).toFixed(1)} MB; peak ${peak} connections`);
  expectNothingLost(seen);
  expect(peak).toBeLessThanOrEqual(MAX_TCP_CONNECTIONS);
  expect(rssGrowth).toBeLessThanOrEqual(MAX_RSS_GROWTH);
  expect(daemon.process.exitCode).toBeNull();
  expect(addresses(await dig(daemon.dnsPort, `${NAME}.`, 'A', ['+tcp']))).toEqual([ONE_INSTANCE.ip]);
}, size(90_000, 900_000));

it('slow, silent and half-open TCP clients beyond the cap: connections bounded, all closed by the idle timeout, UDP unaffected', async () => {
  const watch = new Watch({ daemons: [daemon], expected: EXPECTED, load: { intervalMs: 2 } });
  const evictionsBefore = await metric(daemon, 'presence_dns_tcp_evictions_total');
  const rssBefore = daemonRss(daemon);
  const clients = 300;
  const closedAt: number[] = [];
  let openedAt = 0;
  const peak = await peakConnections(async () => {
    const opened = await Promise.all(Array.from({ length: clients }, () => open()));
    openedAt = Date.now();
    // The server accepts after the kernel has connected them: once it has, the cap has evicted the oldest.
    await waitFor(async () => (await metric(daemon, 'presence_dns_tcp_evictions_total')) >= evictionsBefore + clients - MAX_TCP_CONNECTIONS, 30_000, 'the connections beyond the cap to be evicted');
    const dripping: NodeJS.Timeout[] = [];
    opened.forEach(({ socket, closed }, n) => {
      void closed.then(() => closedAt.push(Date.now()));
      const kind = n % 3;
      // Slow: a query's length prefix, then one byte every half second, never a whole query.
      if (kind === 0) {
        socket.write(Buffer.from([0, 40]));
        dripping.push(setInterval(() => socket.writable && socket.write(Buffer.from([0x41])), 500));
      } else if (kind === 1) {
        // Half-open: half a message, then our side shut for writing; it never reads the rest.
        socket.end(Buffer.from([0, 30, 1, 2, 3]));
      }
      // Silent (kind 2): connected and nothing more.
    });
    // Only the idle timeout closes what the cap left open (none of them ever finishes a
    // query); how long it took is the row's figure, not a bound a loaded machine must meet.
    await waitFor(() => closedAt.length === clients, TCP_IDLE_MS + 30_000, 'every abusive connection to be closed by the idle timeout');
    for (const timer of dripping) clearInterval(timer);
  });
  const seen = await watch.stop();
  reportSeen(`${clients} slow/silent/half-open TCP clients (cap ${MAX_TCP_CONNECTIONS})`, seen, daemonRss(daemon),
    `peak ${peak} connections; last closed ${((Math.max(...closedAt) - openedAt) / 1000).toFixed(1)} s after opening (idle timeout ${TCP_IDLE_MS / 1000} s); RSS growth ${((daemonRss(daemon) - rssBefore) / 2 ** 20).toFixed(1)} MB`);
  expectNothingLost(seen);
  expect(peak).toBeLessThanOrEqual(MAX_TCP_CONNECTIONS);
  expect(await metric(daemon, 'presence_dns_tcp_evictions_total')).toBeGreaterThanOrEqual(evictionsBefore + clients - MAX_TCP_CONNECTIONS);
  expect(await metric(daemon, 'presence_dns_tcp_connections')).toBe(0);
  expect(addresses(await dig(daemon.dnsPort, `${NAME}.`, 'A', ['+tcp']))).toEqual([ONE_INSTANCE.ip]);
}, 90_000);
