// The in-memory model of a topology: what one topology file (ours or BOSH's records.json)
// says after validation. Names are stored lower-case without a trailing dot.

export type Health = 'running' | 'failing' | 'unchecked';
export const HEALTH_VALUES: readonly Health[] = ['running', 'failing', 'unchecked'];

export interface Instance {
  id: string;
  numId: number | null;
  group: string;
  groupIds: number[];
  network: string;
  networkId: number | null;
  deployment: string;
  az: string | null;
  azId: number | null;
  index: number | null;
  ip: string;
  family: 4 | 6;
  /** Served domain, e.g. "bosh". */
  domain: string;
  agentId: string | null;
  cellId: string | null;
  health: Health | null;
  ports: Record<string, number>;
}

/** An alias target: a platform name, possibly with a leading "_" placeholder label. */
export type AliasMap = Map<string, string[]>;

export interface Topology {
  version: number;
  instances: Instance[];
  aliases: AliasMap;
  /** BOSH's `records` list of [ip, name] pairs, when the file carries one. */
  ptrRecords: Array<[string, string]> | null;
  generatedAt: string | null;
  /** Who wrote the file: our syncer writes `presence-dns sync` (writer.ts SYNC_SOURCE). */
  source: string | null;
  /** The presence database our syncer wrote it from (absent in anyone else's file). */
  cluster: string | null;
}

export function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

export { RECORD_KEYS, sameInstance } from './fields.ts';
