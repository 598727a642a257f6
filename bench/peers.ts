// The peer servers the benchmark compares with, from Debian's packages, serving the same
// names as presence-dns on a loopback port of their own: dnsmasq (names from a hosts
// file), and the authoritative servers NSD and Knot DNS (names in a `bosh.` zone file).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchTopology } from './topology.ts';
import { freePort } from './dnsperf.ts';

export interface Peer {
  port: number;
  child: ChildProcess;
}

export function writeZone(path: string, t: BenchTopology): void {
  const lines = ['$ORIGIN bosh.', '$TTL 5', '@ IN SOA ns.bosh. hostmaster.bosh. 1 3600 600 86400 5', '@ IN NS ns.bosh.', 'ns IN A 127.0.0.1'];
  t.instances.forEach((i, n) => lines.push(`${t.names[n].slice(0, -'.bosh'.length)} IN A ${i.ip}`));
  writeFileSync(path, `${lines.join('\n')}\n`);
}

export async function startDnsmasq(hosts: string, size: number): Promise<Peer> {
  const port = await freePort();
  const child = spawn('dnsmasq', [
    '--keep-in-foreground', '--no-resolv', '--no-hosts', `--addn-hosts=${hosts}`, `--port=${port}`,
    '--listen-address=127.0.0.1', '--bind-interfaces', `--cache-size=${Math.min(10_000, size)}`, '--pid-file=', '--user=root',
  ], { stdio: 'ignore' });
  return { port, child };
}

/** NSD with one server process (its default is one per core). */
export async function startNsd(dir: string, zone: string): Promise<Peer> {
  const port = await freePort();
  const conf = join(dir, 'nsd.conf');
  writeFileSync(conf, [
    'server:', `  ip-address: 127.0.0.1@${port}`, '  username: ""', `  zonesdir: "${dir}"`, '  database: ""',
    `  pidfile: "${join(dir, 'nsd.pid')}"`, `  xfrdfile: "${join(dir, 'xfrd.state')}"`, `  zonelistfile: "${join(dir, 'zone.list')}"`,
    '  server-count: 1', '  verbosity: 0', 'remote-control:', '  control-enable: no', 'zone:', '  name: bosh', `  zonefile: "${zone}"`, '',
  ].join('\n'));
  return { port, child: spawn('nsd', ['-d', '-c', conf], { stdio: 'ignore' }) };
}

export async function startKnot(dir: string, zone: string): Promise<Peer> {
  const port = await freePort();
  const run = join(dir, 'knot');
  mkdirSync(run, { recursive: true });
  const conf = join(dir, 'knot.conf');
  writeFileSync(conf, [
    'server:', `    listen: 127.0.0.1@${port}`, `    rundir: ${run}`, 'database:', `    storage: ${run}`,
    'template:', '  - id: default', `    storage: ${dir}`, 'zone:', '  - domain: bosh', `    file: ${zone}`,
    'log:', '  - target: stderr', '    any: error', '',
  ].join('\n'));
  return { port, child: spawn('knotd', ['-c', conf], { stdio: 'ignore' }) };
}
