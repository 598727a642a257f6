// SIGHUP: the config file is read again; live keys apply at once, the others are named
// as needing a restart, and an invalid file leaves the running config in place. Under a
// steady query load, a SIGHUP that brings a new upstream and a new alias drops nothing.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { addresses, dig } from '../helpers/dig.ts';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.ts';
import { Probe } from '../helpers/probe.ts';
import { topologyJson } from '../helpers/topology.ts';
import { required } from '../helpers/required.ts';
import { TestUpstream } from '../forward/upstream-server.ts';

let daemon: RunningDaemon;
const upstreams: TestUpstream[] = [];
afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
  await Promise.all(upstreams.map((u) => u.stop()));
});

const reloads = (d: RunningDaemon) => d.logs.filter((l) => l.includes('config reloaded'));

it('reloads the config on SIGHUP and keeps serving through a bad one', async () => {
  daemon = await startDaemon({
    files: { 'topology.json': topologyJson([{ id: 'h1', ip: '10.0.0.1' }]) },
    config: { log: { level: 'info' } },
  });
  const config = JSON.parse(readFileSync(daemon.configFile, 'utf8')) as Record<string, Record<string, unknown>>;
  writeFileSync(daemon.configFile, JSON.stringify({ ...config, log: { level: 'debug' }, dns: { ...config.dns, ttl: 60 } }));
  daemon.process.kill('SIGHUP');
  await waitFor(() => daemon.logs.some((l) => l.includes('config reloaded')), 20_000, 'the reload log line');
  const reloaded = JSON.parse(required(daemon.logs.find((l) => l.includes('config reloaded')), 'the reload log line')) as { needsRestart: string[] };
  expect(reloaded.needsRestart).toEqual(['dns.ttl']);

  writeFileSync(daemon.configFile, '{ "dns": { "ttl": "soon" } }');
  daemon.process.kill('SIGHUP');
  await waitFor(() => daemon.logs.some((l) => l.includes('the config file is invalid')), 20_000, 'the rejection log line');
  expect(daemon.logs.find((l) => l.includes('the config file is invalid'))).toContain('dns.ttl');
  expect(addresses(await dig(daemon.dnsPort, 'h1.web.default.cf.bosh.'))).toEqual(['10.0.0.1']);
});

it('under a query load, SIGHUP brings in a new upstream and a new alias with 0 failed queries', async () => {
  const before = await TestUpstream.start({ 'old.example.com': { addresses: ['192.0.2.1'], ttl: 300 } });
  const after = await TestUpstream.start({ 'new.example.com': { addresses: ['192.0.2.2'], ttl: 300 } });
  upstreams.push(before, after);
  const loaded = await startDaemon({
    files: {
      'topology.json': topologyJson([{ id: 'h1', ip: '10.0.0.1' }]),
      'aliases.d/old.yaml': 'old.service.internal:\n  - h1.web.default.cf.bosh\n',
    },
    config: { dns: { aliases_dir: 'aliases.d' }, forward: { enabled: true, upstreams: [`127.0.0.1:${before.port}`] }, log: { level: 'info' } },
  });
  try {
    expect(addresses(await dig(loaded.dnsPort, 'old.example.com'))).toEqual(['192.0.2.1']);
    expect((await dig(loaded.dnsPort, 'new.service.internal')).status).not.toBe('NOERROR');

    const probe = new Probe(loaded.dnsPort, ['h1.web.default.cf.bosh', 'old.service.internal', 'old.example.com'], { intervalMs: 5, timeoutMs: 3000 }).start();
    await new Promise((r) => setTimeout(r, 300));
    const config = JSON.parse(readFileSync(loaded.configFile, 'utf8')) as Record<string, Record<string, unknown>>;
    writeFileSync(join(loaded.dir, 'aliases.d/new.yaml'), 'new.service.internal:\n  - h1.web.default.cf.bosh\n');
    writeFileSync(loaded.configFile, JSON.stringify({ ...config, forward: { ...config.forward, upstreams: [`127.0.0.1:${after.port}`] }, dns: { ...config.dns, ttl: 30 } }));
    // Several in a row, as an operator's config management may send them.
    for (let n = 1; n <= 3; n++) {
      loaded.process.kill('SIGHUP');
      await waitFor(() => reloads(loaded).length === n, 5000, `reload ${n}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 300));
    const seen = await probe.stop();
    // A sanity bound only: a loaded machine paces the probe's 5 ms timer far slower.
    expect(seen.sent).toBeGreaterThan(30);
    expect(seen.unanswered).toBe(0);
    expect(seen.wrong).toEqual([]);

    expect((JSON.parse(reloads(loaded)[0]) as { needsRestart: string[] }).needsRestart).toEqual(['dns.ttl']);
    expect(addresses(await dig(loaded.dnsPort, 'new.example.com'))).toEqual(['192.0.2.2']);
    expect(after.count('new.example.com')).toBeGreaterThan(0);
    expect(before.count('new.example.com')).toBe(0);
    expect(addresses(await dig(loaded.dnsPort, 'new.service.internal'))).toEqual(['10.0.0.1']);
    expect(loaded.logs.some((l) => l.includes('upstreams reloaded') && l.includes(`127.0.0.1:${after.port}`))).toBe(true);
    console.log(`SIGHUP ×3 under load: ${seen.sent} queries, ${seen.unanswered} unanswered, ${seen.wrong.length} wrong`);
  } finally {
    expect(await loaded.stop()).toBe(0);
  }
}, 60_000);
