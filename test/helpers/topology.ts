// Builds topology files for tests in our columnar format (or BOSH's, without the extras).

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
