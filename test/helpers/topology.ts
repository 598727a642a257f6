// Builds topology files for tests in our columnar format (or BOSH's, without the extras),
// and reads back what a synced file (snapshot + journal) holds.
import { readFileSync } from 'node:fs';
import type { Registry } from '../../src/admin/metrics.ts';
import { ControlPlane } from '../../src/control/host.ts';
import { TopologyStore } from '../../src/dns/topology.ts';
import { silentLogger } from '../presence/fixtures.ts';
import { readJournal } from '../../src/control/journal.ts';
import { parseTopology } from '../../src/control/reader.ts';
import type { Instance } from '../../src/image/instance.ts';
import { instanceName } from '../../src/image/view.ts';

export interface TestInstance {
  id: string;
  group?: string;
  network?: string;
  deployment?: string;
  ip: string;
  domain?: string;
  index?: number;
  numId?: number;
  groupIds?: number[];
  az?: string;
  azId?: number;
  networkId?: number;
  agentId?: string;
  health?: 'running' | 'failing' | 'unchecked';
  ports?: Record<string, number>;
}

export function topologyJson(instances: TestInstance[], extra: Record<string, unknown> = {}, version = 1): string {
  const keys = ['id', 'num_id', 'instance_group', 'group_ids', 'az', 'az_id', 'network', 'network_id', 'deployment', 'ip', 'domain', 'agent_id', 'instance_index', 'health', 'ports'];
  const rows = instances.map((i) => [
    i.id, i.numId === undefined ? null : String(i.numId), i.group ?? 'web', (i.groupIds ?? [1]).map(String),
    i.az ?? 'z1', i.azId === undefined ? '1' : String(i.azId), i.network ?? 'default', String(i.networkId ?? 1),
    i.deployment ?? 'cf', i.ip, i.domain ?? 'bosh.', i.agentId ?? null, i.index ?? null, i.health ?? null, i.ports ?? null,
  ]);
  return JSON.stringify({ version, record_keys: keys, record_infos: rows, ...extra });
}

/**
 * What a synced topology file holds, as a reader sees it: the snapshot, then the changes
 * its journal (`<file>.journal`) appends after it.
 */
export function syncedTopology(file: string): { version: number; instances: Instance[] } {
  const read = parseTopology(readFileSync(file, 'utf8'));
  if (!read.ok) throw new Error(`topology file unreadable: ${read.error}`);
  const live = new Map(read.topology.instances.map((i) => [instanceName(i), i]));
  let version = read.topology.version;
  let journal = Buffer.alloc(0);
  try {
    journal = readFileSync(`${file}.journal`);
  } catch {
    // No journal: the snapshot is all.
  }
  const changes = readJournal(journal, null);
  if (changes.cursor?.header.base === read.topology.version) {
    for (const entry of changes.entries) {
      for (const name of entry.removes) live.delete(name);
      for (const i of entry.adds) live.set(instanceName(i), i);
      version = entry.version;
    }
  }
  return { version, instances: [...live.values()] };
}

export function syncedInstances(file: string): Instance[] {
  return syncedTopology(file).instances;
}

/**
 * The data plane's topology (TopologyStore) following a real control plane (its worker
 * thread) that reads `file` and the alias files in `aliasesDir`; no database.
 */
export async function followFiles(file: string, aliasesDir: string, metrics: Registry, inlineMaxBytes?: number): Promise<{ store: TopologyStore; control: ControlPlane }> {
  const control = new ControlPlane({ file, aliasesDir, domains: [], logLevel: 'silent', maxFileBytes: 1 << 30, logger: silentLogger, metrics, sync: null, inlineMaxBytes });
  const store = new TopologyStore({ domains: [], control, logger: silentLogger, metrics });
  await control.start();
  return { store, control };
}
