// The command line as an operator uses it: validate-config, a bad config at start
// (exit 2 naming the key), the shipped example topology, and SIGTERM (exit 0, silent).
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { addresses, dig } from '../helpers/dig.ts';
import { startDaemon, tempDir } from '../helpers/daemon.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

interface Exit {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Exit> {
  try {
    const { stdout, stderr } = await run(command, args, { cwd: ROOT, timeout: 30_000, env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const bin = (...args: string[]) => cli(process.execPath, [join(ROOT, 'bin/presence-dns.js'), ...args]);

function configFile(text: string): string {
  const path = join(tempDir(), 'presence.yaml');
  writeFileSync(path, text);
  return path;
}

describe.concurrent('presence-dns validate-config', () => {
  it('exits 0 on the shipped default config', async () => {
    const r = await bin('validate-config', join(ROOT, 'config/default.yaml'));
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toContain('default.yaml: configuration is valid');
  });

  it('exits 0 on the container config', async () => {
    expect((await bin('validate-config', join(ROOT, 'config/container.yaml'))).code).toBe(0);
  });

  it('exits 2 naming the key on a bad file', async () => {
    const r = await bin('validate-config', configFile('dns:\n  ttl: soon\nadmin:\n  prot: 1\n'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('dns.ttl:');
    expect(r.stderr).toContain('admin.prot: unknown key');
  });

  it('exits 2 without a file, and on an unknown command or flag', async () => {
    const [noFile, command, flag] = await Promise.all([bin('validate-config'), bin('frobnicate'), bin('start', '--nope')]);
    expect(noFile).toMatchObject({ code: 2 });
    expect(noFile.stderr).toContain('validate-config needs a FILE');
    expect(command).toMatchObject({ code: 2 });
    expect(command.stderr).toContain('unknown command "frobnicate"');
    expect(flag).toMatchObject({ code: 2 });
    expect(flag.stderr).toContain('unknown flag "--nope"');
  });

  it('prints usage with --help', async () => {
    const r = await bin('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('presence-dns validate-config FILE');
  });
});

describe.concurrent('starting with a bad config', () => {
  it('npm start exits 2 naming the key', async () => {
    const r = await cli('npm', ['start', '--silent', '--', '--config', configFile('dns:\n  listen: 5353\n')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('dns.listen:');
  });

  it('a bad PRESENCE_DNS_* value exits 2 naming the variable', async () => {
    const r = await cli(process.execPath, [join(ROOT, 'bin/presence-dns.js'), 'start'], { PRESENCE_DNS_DNS_TLL: '1' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('PRESENCE_DNS_DNS_TLL does not name a config key');
  });
});

describe('the running daemon', () => {
  it('serves the example topology shipped in config/', async () => {
    const daemon = await startDaemon({
      config: { topology: { file: join(ROOT, 'config/topology.json') }, dns: { aliases_dir: join(ROOT, 'config/aliases.d') } },
    });
    try {
      expect(addresses(await dig(daemon.dnsPort, 'q-s0.web.default.cf.bosh.'))).toEqual(['10.0.1.10', '10.0.2.10']);
      expect(addresses(await dig(daemon.dnsPort, 'web.service.internal.'))).toEqual(['10.0.1.10', '10.0.2.10']);
    } finally {
      await daemon.stop();
    }
  });

  it('exits 0 on SIGTERM and stops answering', async () => {
    const daemon = await startDaemon({ files: { 'topology.json': JSON.stringify({ record_keys: ['id', 'instance_group', 'network', 'deployment', 'ip', 'domain'], record_infos: [['a', 'web', 'default', 'cf', '10.0.0.1', 'bosh.']] }) } });
    expect(addresses(await dig(daemon.dnsPort, 'a.web.default.cf.bosh.'))).toEqual(['10.0.0.1']);
    expect(await daemon.stop('SIGTERM')).toBe(0);
    expect(daemon.logs.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
    const after = await dig(daemon.dnsPort, 'a.web.default.cf.bosh.', 'A', ['+time=1']);
    expect(after.status).toBe('');
    expect(after.answer).toEqual([]);
    const tcp = await dig(daemon.dnsPort, 'a.web.default.cf.bosh.', 'A', ['+tcp', '+time=1']);
    expect(tcp.status).toBe('');
    await expect(daemon.admin('/health')).rejects.toThrow();
  });
});
