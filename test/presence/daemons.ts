// Shared by the presence end-to-end tests: the config that switches a test daemon's
// database pipeline on, registration files, and what `dig` says for a group.
import type { RunningDaemon } from '../helpers/daemon.ts';
import { dig } from '../helpers/dig.ts';

export interface TestInstance {
  id: string;
  group: string;
  ip: string;
}

export function presenceConfig(url: string, cellId: string, ttlSeconds: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    database: { url },
    sync: { enabled: true, interval: 0.5 },
    registrar: { enabled: true, cell_id: cellId, ttl: ttlSeconds },
    reaper: { enabled: true },
    registrations: { dir: 'instances.d' },
    log: { level: 'info' },
    ...over,
  };
}

export function instancesFile(instances: TestInstance[]): string {
  return JSON.stringify({ instances: instances.map((i) => ({ ...i, network: 'default', deployment: 'cf' })) });
}

/** The sorted addresses `dig` gets for every instance of a group, or the rcode when none. */
export async function answers(daemon: RunningDaemon, group: string): Promise<string[]> {
  const r = await dig(daemon.dnsPort, `q-s4.${group}.default.cf.bosh`);
  return r.status === 'NOERROR' ? r.answer.map((a) => a.data).sort() : [r.status];
}

export async function metric(daemon: RunningDaemon, name: string): Promise<number> {
  const text = await (await daemon.admin('/metrics')).text();
  const line = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return line ? Number(line[1]) : NaN;
}
