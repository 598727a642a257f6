// Writing a topology file atomically (DESIGN §3.2): temp file in the same directory,
// fsync, rename over the target, fsync the directory. A reader (the TopologyStore of this
// or another process) sees the old file or the new one, never half of one.
// The format is BOSH's columnar records.json with our extra columns and metadata.
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Instance } from './types.ts';

export type TopologyRecord = Omit<Instance, 'family'>;

export interface TopologyDocument {
  /** The revision the records reflect; read back as the topology's version. */
  version: number;
  source: string;
  records: TopologyRecord[];
  generatedAt?: Date;
}

export const RECORD_KEYS = ['id', 'num_id', 'instance_group', 'group_ids', 'az', 'az_id', 'network', 'network_id',
  'deployment', 'ip', 'domain', 'agent_id', 'instance_index', 'health', 'cell_id', 'ports'] as const;

// BOSH writes numeric ids as strings; we do too so its tooling reads our files.
const idText = (n: number | null) => (n === null ? null : String(n));

export function serializeTopology(doc: TopologyDocument): string {
  const infos = doc.records.map((r) => [
    r.id, idText(r.numId), r.group, r.groupIds.map(String), r.az, idText(r.azId), r.network, idText(r.networkId),
    r.deployment, r.ip, r.domain, r.agentId, r.index, r.health, r.cellId, r.ports,
  ]);
  return JSON.stringify({
    version: doc.version,
    generated_at: (doc.generatedAt ?? new Date()).toISOString(),
    source: doc.source,
    record_keys: RECORD_KEYS,
    record_infos: infos,
  });
}

/** Replaces `file` with `content` atomically and durably. */
export async function writeFileAtomic(file: string, content: string): Promise<void> {
  const dir = dirname(file);
  const temp = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'w', 0o644);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  // The rename is durable only once the directory entry is on disk.
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

export function writeTopologyFile(file: string, doc: TopologyDocument): Promise<void> {
  return writeFileAtomic(file, serializeTopology(doc));
}
