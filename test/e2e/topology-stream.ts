// Shared by the topology end-to-end tests: a steady stream of UDP queries at the running
// daemon that records every reply, so a test can prove no query failed while the
// topology file was being rewritten, broken or deleted, and when new answers appeared.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UdpClient } from '../dns/client.ts';
import { waitFor, type RunningDaemon } from '../helpers/daemon.ts';
import { required } from '../helpers/required.ts';
import { topologyJson } from '../helpers/topology.ts';

export interface Sample {
  at: number;
  addresses: string[] | null;
  rcode: number | null;
}

export class QueryStream {
  readonly samples: Sample[] = [];
  private readonly client: UdpClient;
  private running = true;
  private readonly loop: Promise<void>;

  constructor(port: number, name: string, pauseMs = 2) {
    const client = new UdpClient(port);
    this.client = client;
    this.loop = (async () => {
      while (this.running) {
        const reply = await client.ask(name);
        this.samples.push({ at: performance.now(), addresses: reply?.addresses ?? null, rcode: reply?.rcode ?? null });
        await new Promise((r) => setTimeout(r, pauseMs));
      }
    })();
  }

  /** Replies that were missing, not NOERROR, or empty. */
  failures(): Sample[] {
    return this.samples.filter((s) => s.rcode !== 0 || !s.addresses?.length);
  }

  /** Waits until a reply sent after `since` carries `addresses`; returns how long that took, ms. */
  async until(addresses: string[], since: number, timeoutMs = 20_000): Promise<number> {
    const want = addresses.join(',');
    const seen = () => this.samples.find((s) => s.at > since && s.addresses?.join(',') === want);
    await waitFor(() => seen() !== undefined, timeoutMs, `answers ${want}`);
    return required(seen(), `a reply with ${want}`).at - since;
  }

  /** Waits for a few more replies, so assertions cover the state after an event. */
  async settle(count = 20): Promise<void> {
    const target = this.samples.length + count;
    await waitFor(() => this.samples.length >= target, 5000, `${count} more replies`);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.client.close();
  }
}

/** One web instance per version, so the answer tells which version is in service. */
export function versionTopology(version: number): string {
  return topologyJson([{ id: `web-${version}`, ip: `10.0.0.${version}`, index: 0 }], {}, version);
}

/** Writes like our syncer does: a temp file in the same directory, then rename over. */
export function writeAtomically(dir: string, file: string, text: string): void {
  const tmp = join(dir, `.${file}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(dir, file));
}

export async function reloadFailures(daemon: Pick<RunningDaemon, 'admin'>): Promise<number> {
  const text = await (await daemon.admin('/metrics')).text();
  return Number(/^presence_dns_topology_reload_failures_total (\d+)$/m.exec(text)?.[1] ?? NaN);
}
