// The DNS worker threads of dns.workers, in process: a worker thread that dies is
// restarted, and meanwhile the main thread's socket keeps answering on the same port.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { Registry } from '../../src/admin/metrics.ts';
import { configSchema } from '../../src/config/schema.ts';
import { allocateAnswerCache } from '../../src/dns/answer-cache.ts';
import { DnsHandler } from '../../src/dns/handler.ts';
import { startDns } from '../../src/dns/start.ts';
import { tempDir, waitFor } from '../helpers/daemon.ts';
import { followFiles, topologyJson } from '../helpers/topology.ts';
import { silentLogger } from '../presence/fixtures.ts';
import { UdpClient } from './client.ts';

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('DNS worker threads', () => {
  it('restarts a worker that dies; the main thread keeps answering meanwhile', async () => {
    const dir = tempDir();
    const file = join(dir, 'topology.json');
    writeFileSync(file, topologyJson([{ id: 'a', ip: '10.0.0.1' }]));
    const metrics = new Registry();
    const { store: topology, control } = await followFiles(file, join(dir, 'aliases.d'), metrics);
    cleanups.push(() => control.stop());
    const config = configSchema.parse({ dns: { listen: [{ address: '127.0.0.1', port: 0 }], workers: 2 } }).dns;
    const handler = new DnsHandler({
      ttl: 5, negativeTtl: 5, maxUdpSize: 1232, metrics, currentIndex: () => topology.current,
      answerCache: { buffer: allocateAnswerCache(1 << 20, 2), log: 0 },
    });
    topology.onChange((change, stamp) => handler.topologyChanged(change, stamp));
    const dns = await startDns({ config, handler, topology, recursionAvailable: () => false, logLevel: 'silent', logger: silentLogger, metrics });
    cleanups.push(() => dns.stop());
    expect(dns.threads).toBe(2);
    const clients = Array.from({ length: 32 }, () => new UdpClient(dns.bound[0].port));
    cleanups.push(() => clients.forEach((c) => c.close()));
    const allAnswered = async () => (await Promise.all(clients.map((c) => c.ask('a.web.default.cf.bosh', 1, 2000))))
      .every((r) => r?.addresses.join() === '10.0.0.1');
    expect(await allAnswered()).toBe(true);

    const [worker] = (dns.workers as unknown as { workers: Set<Worker> }).workers;
    await worker.terminate();
    expect(dns.workers?.size).toBe(0);
    // The kernel now hands every client to the main thread's socket.
    expect(await allAnswered()).toBe(true);
    await waitFor(() => dns.workers?.size === 1, 10_000, 'the worker to be restarted');
    expect(await metrics.value('presence_dns_dns_worker_restarts_total')).toBe(1);
    expect(await allAnswered()).toBe(true);
  });
});
