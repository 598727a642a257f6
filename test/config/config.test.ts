// Config loading: defaults, errors that name the key, env and --set overrides, and
// relative paths resolved against the config file.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { changedKeys, ConfigError, withKeys } from '../../src/config/index.ts';
import { loadConfig } from '../../src/config/load.ts';
import { tempDir } from '../helpers/daemon.ts';
import { required } from '../helpers/required.ts';

function file(name: string, text: string): string {
  const path = join(tempDir(), name);
  writeFileSync(path, text);
  return path;
}

function error(run: () => unknown): ConfigError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('CONFIG_INVALID');
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('has a default for every key the foundation uses', () => {
    const { config, file: from } = loadConfig();
    expect(from).toBeNull();
    expect(config.dns.listen).toEqual([{ address: '127.0.0.1', port: 5353 }]);
    expect(config.dns.ttl).toBe(5);
    expect(config.dns.max_udp_size).toBe(1232);
    expect(config.admin).toMatchObject({ enabled: true, address: '127.0.0.1', port: 8053 });
    expect(config.log.level).toBe('info');
    expect(config.topology.file).toBe(resolve('topology.json'));
  });

  it('switches the presence modules on where there is a database, and names the key asked for without one', () => {
    const modules = (c: ReturnType<typeof loadConfig>['config']) => [c.sync.enabled, c.registrar.enabled, c.reaper.enabled];
    expect(modules(loadConfig().config)).toEqual([true, true, true]);
    const sidecar = file('c.yaml', 'database:\n  embedded: false\n');
    expect(modules(loadConfig({ file: sidecar }).config)).toEqual([false, false, false]);
    expect(modules(loadConfig({ file: sidecar, env: { PRESENCE_DNS_DATABASE_URL: 'postgres://db/presence' } }).config)).toEqual([true, true, true]);
    expect(modules(loadConfig({ file: sidecar, env: { PRESENCE_DNS_DATABASE_EMBEDDED: 'true', PRESENCE_DNS_REAPER_ENABLED: 'false' } }).config)).toEqual([true, true, false]);
    const err = error(() => loadConfig({ file: sidecar, env: { PRESENCE_DNS_SYNC_ENABLED: 'true' } }));
    expect(err.message).toContain('sync.enabled');
    expect(err.message).toContain('there is no database: set database.url, or database.embedded: true');
  });

  it('reads YAML and JSON files and fills in the rest', () => {
    const yaml = loadConfig({ file: file('c.yaml', 'dns:\n  ttl: 9\n') }).config;
    expect(yaml.dns.ttl).toBe(9);
    expect(yaml.dns.listen).toEqual([{ address: '127.0.0.1', port: 5353 }]);
    expect(loadConfig({ file: file('c.json', '{"admin": {"port": 9000}}') }).config.admin.port).toBe(9000);
    expect(loadConfig({ file: file('empty.yaml', '') }).config.dns.ttl).toBe(5);
  });

  it('resolves relative paths against the config file\'s directory, keeps absolute ones', () => {
    const path = file('c.yaml', 'topology:\n  file: data/topology.json\ndns:\n  aliases_dir: /etc/aliases.d\n');
    const { config } = loadConfig({ file: path });
    expect(config.topology.file).toBe(join(path, '..', 'data/topology.json'));
    expect(config.dns.aliases_dir).toBe('/etc/aliases.d');
    expect(config.registrations.dir).toBe(join(path, '..', 'instances.d'));
  });

  it('resolves the NATS TLS files against the config file\'s directory too', () => {
    const path = file('tls.yaml', 'routes:\n  nats_url: tls://127.0.0.1:4222\n  nats_tls:\n    ca_file: certs/ca.pem\n    cert_file: /etc/pki/cert.pem\n    key_file: /etc/pki/key.pem\n');
    const tls = required(loadConfig({ file: path }).config.routes.nats_tls, 'routes.nats_tls');
    expect(tls.ca_file).toBe(join(path, '..', 'certs/ca.pem'));
    expect(tls.cert_file).toBe('/etc/pki/cert.pem');
  });

  it.each([
    ['an unknown key', 'dns:\n  tll: 5\n', 'dns.tll: unknown key'],
    ['an unknown section', 'dnz: {}\n', 'dnz: unknown key'],
    ['a wrong type', 'dns:\n  ttl: five\n', 'dns.ttl:'],
    ['an out-of-range port', 'admin:\n  port: 70000\n', 'admin.port:'],
    ['a bad listen entry', 'dns:\n  listen:\n    - { address: 127.0.0.1, port: "x" }\n', 'dns.listen.0.port:'],
    ['an unknown log level', 'log:\n  level: loud\n', 'log.level:'],
    ['a bad upstream', 'forward:\n  upstreams: ["10.0.0.2", "nope:53"]\n', 'forward.upstreams.1: "nope:53" is not an IP address'],
    ['a bad allow CIDR', 'forward:\n  allow: ["10.0.0.0/33"]\n', 'forward.allow.0: "10.0.0.0/33" is not a CIDR'],
    ['an admin API open to the network without a token', 'admin:\n  address: 0.0.0.0\n', 'admin.address: 0.0.0.0 is not a loopback address, so admin.token (or PRESENCE_DNS_ADMIN_TOKEN) must be set'],
  ])('names the key for %s', (_what, text, message) => {
    expect(error(() => loadConfig({ file: file('bad.yaml', text) })).message).toContain(message);
  });

  it('takes a non-loopback admin address with a token, and loopback ones without', () => {
    expect(loadConfig({ file: file('open.yaml', 'admin:\n  address: 0.0.0.0\n'), env: { PRESENCE_DNS_ADMIN_TOKEN: 's3cret' } }).config.admin.address).toBe('0.0.0.0');
    for (const address of ['127.0.0.1', '::1', 'localhost']) {
      expect(loadConfig({ file: file('local.yaml', `admin:\n  address: "${address}"\n`) }).config.admin.address).toBe(address);
    }
  });

  it('says when the file cannot be read or does not parse', () => {
    expect(error(() => loadConfig({ file: '/nonexistent/presence.yaml' })).message).toContain('cannot read config file /nonexistent/presence.yaml: ENOENT');
    expect(error(() => loadConfig({ file: file('broken.yaml', 'dns: [unclosed\n') })).message).toContain('does not parse');
    expect(error(() => loadConfig({ file: file('list.yaml', '- a\n- b\n') })).message).toContain('top level must be a mapping');
  });

  it('takes PRESENCE_DNS_* environment variables over the file', () => {
    const path = file('c.yaml', 'dns:\n  ttl: 9\n');
    const { config } = loadConfig({
      file: path,
      env: {
        PRESENCE_DNS_DNS_TTL: '30',
        PRESENCE_DNS_ADMIN_ADDRESS: '127.0.0.2',
        PRESENCE_DNS_FORWARD_CACHE_MAX_ENTRIES: '50',
        PRESENCE_DNS_DNS_LISTEN: '[{"address":"0.0.0.0","port":53}]',
        PRESENCE_DNS_TOPOLOGY_FILE: 'rel.json',
        UNRELATED: 'x',
      },
    });
    expect(config.dns.ttl).toBe(30);
    expect(config.admin.address).toBe('127.0.0.2');
    expect(config.forward.cache.max_entries).toBe(50);
    expect(config.dns.listen).toEqual([{ address: '0.0.0.0', port: 53 }]);
    expect(config.topology.file).toBe(join(path, '..', 'rel.json'));
  });

  it('rejects an environment variable that names no key, and a wrong value type from env', () => {
    expect(error(() => loadConfig({ env: { PRESENCE_DNS_DNS_TTLL: '5' } })).message).toContain('PRESENCE_DNS_DNS_TTLL does not name a config key');
    expect(error(() => loadConfig({ env: { PRESENCE_DNS_DNS_TTL: 'soon' } })).message).toContain('dns.ttl:');
  });

  it('takes --set over env and file', () => {
    const { config } = loadConfig({
      file: file('c.yaml', 'dns:\n  ttl: 9\n'),
      env: { PRESENCE_DNS_DNS_TTL: '30' },
      overrides: ['dns.ttl=60', 'log.level=debug', 'forward.upstreams=["1.1.1.1:53"]'],
    });
    expect(config.dns.ttl).toBe(60);
    expect(config.log.level).toBe('debug');
    expect(config.forward.upstreams).toEqual(['1.1.1.1:53']);
  });

  it('keeps digits as text for string keys (a token, a cell id) and reads them as numbers elsewhere', () => {
    const { config } = loadConfig({
      env: { PRESENCE_DNS_ADMIN_TOKEN: '12345', PRESENCE_DNS_ADMIN_PORT: '9000' },
      overrides: ['registrar.cell_id=42', 'log.level=warn'],
    });
    expect(config.admin.token).toBe('12345');
    expect(config.admin.port).toBe(9000);
    expect(config.registrar.cell_id).toBe('42');
    expect(config.log.level).toBe('warn');
  });

  it('names the key of a bad --set', () => {
    expect(error(() => loadConfig({ overrides: ['dns.nope=1'] })).message).toContain('dns.nope: unknown key');
    expect(error(() => loadConfig({ overrides: ['dns.ttl'] })).message).toContain('--set dns.ttl: expected key.path=value');
  });
});

describe('comparing configs for a reload', () => {
  it('names each changed key, and takes only the named keys from the new config', () => {
    const before = loadConfig({ overrides: ['dns.ttl=5', 'forward.upstreams=["10.0.0.2"]'] }).config;
    const after = loadConfig({ overrides: ['dns.ttl=30', 'forward.upstreams=["10.0.0.3"]', 'log.level=debug', 'admin.token=t'] }).config;
    expect(changedKeys(before, after).sort()).toEqual(['admin.token', 'dns.ttl', 'forward.upstreams', 'log.level']);
    expect(changedKeys(before, before)).toEqual([]);
    const applied = withKeys(before, after, ['log.level', 'forward.upstreams', 'admin.token']);
    expect(applied.log.level).toBe('debug');
    expect(applied.forward.upstreams).toEqual(['10.0.0.3']);
    expect(applied.admin.token).toBe('t');
    expect(applied.dns.ttl).toBe(5);
    expect(withKeys(after, before, ['admin.token']).admin.token).toBeUndefined();
    expect(before.dns.ttl).toBe(5);
  });
});
