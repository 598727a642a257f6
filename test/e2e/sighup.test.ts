// SIGHUP: the config file is read again; live sections apply at once, the others are
// named as needing a restart, and an invalid file leaves the running config in place.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, expect, it } from 'vitest';
import { addresses, dig } from '../helpers/dig.ts';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.ts';
import { topologyJson } from '../helpers/topology.ts';

let daemon: RunningDaemon;
afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

it('reloads the config on SIGHUP and keeps serving through a bad one', async () => {
  daemon = await startDaemon({
    files: { 'topology.json': topologyJson([{ id: 'h1', ip: '10.0.0.1' }]) },
    config: { log: { level: 'info' } },
  });
  const config = JSON.parse(readFileSync(daemon.configFile, 'utf8')) as Record<string, Record<string, unknown>>;
  writeFileSync(daemon.configFile, JSON.stringify({ ...config, log: { level: 'debug' }, dns: { ...config.dns, ttl: 60 } }));
  daemon.process.kill('SIGHUP');
  await waitFor(() => daemon.logs.some((l) => l.includes('config reloaded')), 5000, 'the reload log line');
  const reloaded = JSON.parse(daemon.logs.find((l) => l.includes('config reloaded'))!) as { needsRestart: string[] };
  expect(reloaded.needsRestart).toEqual(['dns']);

  writeFileSync(daemon.configFile, '{ "dns": { "ttl": "soon" } }');
  daemon.process.kill('SIGHUP');
  await waitFor(() => daemon.logs.some((l) => l.includes('the config file is invalid')), 5000, 'the rejection log line');
  expect(daemon.logs.find((l) => l.includes('the config file is invalid'))).toContain('dns.ttl');
  expect(addresses(await dig(daemon.dnsPort, 'h1.web.default.cf.bosh.'))).toEqual(['10.0.0.1']);
});
