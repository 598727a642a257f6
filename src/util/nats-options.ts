// NATS config keys (the `routes` section's, and `sync.nats_url`) → nats.js connection options. Pure (no connection), so the config
// schema checks the same rules at load time and `validate-config` reports them.
import type { ConnectionOptions } from 'nats';
import { redactUrl } from '../util/redact.ts';

/** The NATS keys of a config section (`routes`), as written there. */
export interface NatsSettings {
  /** One URL or a comma-separated list; `nats://user:pass@host:port` is accepted. */
  nats_url: string;
  nats_user?: string;
  nats_password?: string;
  nats_token?: string;
  nats_tls?: { ca_file?: string; cert_file?: string; key_file?: string };
}

export class NatsConfigError extends Error {
  readonly code = 'NATS_CONFIG_INVALID';

  constructor(readonly key: keyof NatsSettings, readonly reason: string, section: string) {
    super(`${section}.${key}: ${reason}`);
  }
}


/**
 * nats.js options from our config. Credentials embedded in the URL (how CF manifests
 * spell NATS URLs) become user/password because the client does not read them there;
 * explicit `nats_user`/`nats_password` win.
 */
export function natsConnectionOptions(settings: NatsSettings, section = 'routes'): ConnectionOptions & { servers: string[] } {
  let urlUser: string | undefined;
  let urlPassword: string | undefined;
  const servers = settings.nats_url.split(',').map((raw) => raw.trim()).filter(Boolean).map((raw) => {
    const withScheme = raw.includes('://') ? raw : `nats://${raw}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      throw new NatsConfigError('nats_url', `"${redactUrl(raw)}" is not a URL (expected nats://host:port)`, section);
    }
    if (url.protocol !== 'nats:' && url.protocol !== 'tls:') {
      throw new NatsConfigError('nats_url', `"${redactUrl(raw)}": the scheme must be nats:// or tls://`, section);
    }
    if (!url.hostname) throw new NatsConfigError('nats_url', `"${redactUrl(raw)}" has no host`, section);
    if (url.username) urlUser = decodeURIComponent(url.username);
    if (url.password) urlPassword = decodeURIComponent(url.password);
    return `${url.protocol}//${url.host}`;
  });
  if (servers.length === 0) throw new NatsConfigError('nats_url', 'names no server', section);
  const user = settings.nats_user ?? urlUser;
  const pass = settings.nats_password ?? urlPassword;
  if (settings.nats_token && user) throw new NatsConfigError('nats_token', 'set either a token or a user/password, not both', section);
  const files = settings.nats_tls ?? {};
  if (Boolean(files.cert_file) !== Boolean(files.key_file)) {
    throw new NatsConfigError('nats_tls', 'a client certificate needs both cert_file and key_file', section);
  }
  // nats.js ignores the URL scheme, so tls:// has to become an explicit TLS requirement.
  const wantsTls = servers.some((s) => s.startsWith('tls:')) || Boolean(files.ca_file || files.cert_file);
  return {
    servers,
    ...(user !== undefined && { user, pass: pass ?? '' }),
    ...(settings.nats_token !== undefined && { token: settings.nats_token }),
    ...(wantsTls && {
      tls: {
        ...(files.ca_file && { caFile: files.ca_file }),
        ...(files.cert_file && { certFile: files.cert_file }),
        ...(files.key_file && { keyFile: files.key_file }),
      },
    }),
  };
}
