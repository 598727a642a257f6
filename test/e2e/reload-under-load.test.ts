// End-to-end: the topology file is replaced every 100–200 ms while a bounded stream of
// queries runs against the daemon; every query gets an answer, names that stay in the
// topology always resolve to their address, and a name whose address changes resolves
// to one of the addresses it had — through the fast path's cache, cleared on each swap.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { topologyJson, type TestInstance } from '../helpers/topology.ts';
import { UdpClient } from '../dns/client.ts';

const STABLE = Array.from({ length: 50 }, (_, n): TestInstance => ({ id: `stable-${n}`, ip: `10.0.0.${n + 1}`, index: n, health: 'running' }));
const movingIp = (version: number) => `10.9.0.${(version % 250) + 1}`;

function topology(version: number): string {
  return topologyJson([...STABLE, { id: 'moving', group: 'mover', ip: movingIp(version), index: 0, health: 'running' }], {}, version);
}

async function metric(daemon: RunningDaemon, name: string): Promise<number> {
  const text = await (await daemon.admin('/metrics')).text();
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
}

const reloads = (daemon: RunningDaemon) => metric(daemon, 'presence_dns_topology_reloads_total');

describe('topology reloads under a query stream', () => {
  let daemon: RunningDaemon;
  beforeAll(async () => {
    daemon = await startDaemon({ files: { 'topology.json': topology(1) }, config: { log: { level: 'info' } } });
  });
  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
  });

  it('answers every query, with the addresses the topology had, while it is replaced every 100-200 ms', async () => {
    const file = join(daemon.dir, 'topology.json');
    const before = await reloads(daemon);
    let version = 1;
    const written = new Set([movingIp(1)]);
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await new Promise((r) => setTimeout(r, 100 + (version % 3) * 50));
        version++;
        written.add(movingIp(version));
        // Write beside and rename over, as the syncer does: readers never see half a file.
        writeFileSync(`${file}.tmp`, topology(version));
        renameSync(`${file}.tmp`, file);
      }
    })();

    const client = new UdpClient(daemon.dnsPort);
    const TOTAL = 4000;
    const CONCURRENCY = 20;
    const failures: string[] = [];
    let movingAnswers = 0;
    let next = 0;
    const worker = async () => {
      while (next < TOTAL) {
        const n = next++;
        const moving = n % 5 === 0;
        const stable = STABLE[n % STABLE.length];
        const name = moving ? 'MOVING.mover.default.cf.bosh' : `${n % 2 ? stable.id.toUpperCase() : stable.id}.web.default.cf.bosh`;
        const reply = await client.ask(name, 1, 2000);
        if (!reply) failures.push(`${name}: no answer`);
        else if (reply.rcode !== 0) failures.push(`${name}: rcode ${reply.rcode}`);
        else if (moving) {
          movingAnswers++;
          if (reply.addresses.length !== 1 || !written.has(reply.addresses[0])) failures.push(`${name}: ${reply.addresses.join(',')}`);
        } else if (reply.addresses.join() !== stable.ip) failures.push(`${name}: ${reply.addresses.join(',')} instead of ${stable.ip}`);
        // Paced so that the bounded stream lasts over two seconds and overlaps many reloads.
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    writing = false;
    await writer;
    client.close();

    expect(failures).toEqual([]);
    expect(movingAnswers).toBe(TOTAL / 5);
    // The stream really overlapped reloads (the debounce may merge a few writes).
    expect((await reloads(daemon)) - before).toBeGreaterThanOrEqual(5);
    // Most answers came from the fast path's cache, refilled after each swap.
    expect(await metric(daemon, 'presence_dns_answer_cache_hits_total')).toBeGreaterThan(TOTAL / 2);
  });
});
