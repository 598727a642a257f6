// Synthetic topologies for the benchmark: N instances in groups of 50 across a few
// deployments, in our columnar format, plus the same names as a hosts file for dnsmasq
// and a dnsperf query file of instance names.
import { writeFileSync } from 'node:fs';
import { topologyJson, type TestInstance } from '../test/helpers/topology.ts';

const GROUP_SIZE = 50;

export interface BenchTopology {
  instances: TestInstance[];
  names: string[];
}

export function generate(count: number): BenchTopology {
  const instances: TestInstance[] = [];
  const names: string[] = [];
  for (let n = 0; n < count; n++) {
    const group = `g${Math.floor(n / GROUP_SIZE)}`;
    const deployment = `d${Math.floor(n / (GROUP_SIZE * 100))}`;
    // Ids that look like instance ids rather than a counter, and are unique per n.
    const id = `i${n.toString(36)}-${(n * 2654435761) % 1e6}`;
    const ip = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
    instances.push({ id, group, deployment, ip, index: n % GROUP_SIZE, groupIds: [Math.floor(n / GROUP_SIZE)], health: 'running', ports: { http: 8080 } });
    names.push(`${id}.${group}.default.${deployment}.bosh`);
  }
  return { instances, names };
}

export function writeTopology(path: string, t: BenchTopology, version: number): void {
  writeFileSync(path, topologyJson(t.instances, {}, version));
}

export function writeHosts(path: string, t: BenchTopology): void {
  writeFileSync(path, t.instances.map((i, n) => `${i.ip} ${t.names[n]}`).join('\n') + '\n');
}

export function writeQueries(path: string, t: BenchTopology, type = 'A'): void {
  writeFileSync(path, t.names.map((name) => `${name} ${type}`).join('\n') + '\n');
}
