// deploy/presence-dns.service: its hardening (docs/operating.md), read from
// the file, then `systemd-analyze verify` (no warnings) and its offline security score on
// the unit with this checkout's paths, where systemd is installed (Debian: systemd).
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const UNIT = readFileSync(join(ROOT, 'deploy/presence-dns.service'), 'utf8');
const run = promisify(execFile);

/** `Key=value` lines per section (a key given twice keeps its values in order). */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const sections: Record<string, Record<string, string[]>> = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1];
      sections[section] = {};
      continue;
    }
    const eq = line.indexOf('=');
    (sections[section][line.slice(0, eq)] ??= []).push(line.slice(eq + 1));
  }
  return sections;
}

const hasSystemdAnalyze = (() => {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!hasSystemdAnalyze) console.warn('systemd-analyze is not installed (Debian: apt-get install -y systemd): the unit is checked as text only');

/** The unit with this checkout in place of /opt/presence-dns and this Node as /usr/bin/node, so verify finds both. */
function localUnit(): string {
  const dir = mkdtempSync(join(tmpdir(), 'presence-unit-'));
  const file = join(dir, 'presence-dns.service');
  writeFileSync(file, UNIT.replaceAll('/opt/presence-dns', ROOT).replaceAll('/usr/bin/node', process.execPath));
  return file;
}

describe('deploy/presence-dns.service', () => {
  const unit = parseUnit(UNIT);
  const service = unit.Service;
  const one = (key: string) => {
    expect(service[key], key).toHaveLength(1);
    return service[key][0];
  };

  it('runs the compiled bin as a dynamic user with only CAP_NET_BIND_SERVICE, on a read-only system', () => {
    expect(one('ExecStart')).toBe('/usr/bin/node --max-semi-space-size=1 /opt/presence-dns/bin/presence-dns.js start --config /etc/presence-dns/config.yaml');
    expect(one('DynamicUser')).toBe('yes');
    expect(service.User).toBeUndefined();
    expect(one('AmbientCapabilities')).toBe('CAP_NET_BIND_SERVICE');
    expect(one('CapabilityBoundingSet')).toBe('CAP_NET_BIND_SERVICE');
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('StateDirectory')).toBe('presence-dns');
    for (const key of ['ProtectHome', 'PrivateTmp', 'PrivateDevices', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectControlGroups', 'RestrictNamespaces', 'RestrictSUIDSGID', 'LockPersonality']) {
      expect(one(key), key).toBe('yes');
    }
    expect(one('SystemCallFilter')).toBe('@system-service');
    // V8's JIT writes code pages: this one would kill the process at start.
    expect(service.MemoryDenyWriteExecute).toBeUndefined();
  });

  it('reloads on SIGHUP, stops on SIGTERM with time to deregister, restarts on failure, orders itself before name lookups', () => {
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(Number(one('TimeoutStopSec'))).toBeGreaterThanOrEqual(5);
    expect(one('Restart')).toBe('always');
    expect(unit.Unit.Before).toContain('nss-lookup.target');
    expect(unit.Install.WantedBy).toEqual(['multi-user.target']);
  });

  it.skipIf(!hasSystemdAnalyze)('passes systemd-analyze verify without a warning', async () => {
    const { stdout, stderr } = await run('systemd-analyze', ['verify', localUnit()]);
    expect(`${stdout}${stderr}`).toBe('');
  });

  it.skipIf(!hasSystemdAnalyze)('scores "OK" or better in systemd-analyze security (exposure ≤ 2.5 of 10)', async () => {
    const { stdout } = await run('systemd-analyze', ['security', '--offline=yes', localUnit()]);
    const exposure = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(stdout)?.[1]);
    console.log(`systemd-analyze security --offline=yes: exposure ${exposure}`);
    expect(exposure).toBeLessThanOrEqual(2.5);
  });
});
