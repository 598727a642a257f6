import { describe, expect, it } from 'vitest';
import { NatsConfigError, natsConnectionOptions } from '../../src/util/nats-options.ts';

function refusal(settings: Parameters<typeof natsConnectionOptions>[0]): NatsConfigError | null {
  try {
    natsConnectionOptions(settings);
    return null;
  } catch (err) {
    return err as NatsConfigError;
  }
}

describe('natsConnectionOptions', () => {
  it('takes credentials out of a CF-style NATS URL list', () => {
    expect(natsConnectionOptions({ nats_url: 'nats://nats:s3cret@10.0.0.5:4222, nats://nats:s3cret@10.0.0.6:4222' })).toEqual({
      servers: ['nats://10.0.0.5:4222', 'nats://10.0.0.6:4222'], user: 'nats', pass: 's3cret',
    });
  });

  it('explicit nats_user / nats_password win over the URL', () => {
    expect(natsConnectionOptions({ nats_url: 'nats://a:b@h:4222', nats_user: 'u', nats_password: 'p' })).toMatchObject({ user: 'u', pass: 'p' });
  });

  it('decodes percent-escaped passwords', () => {
    expect(natsConnectionOptions({ nats_url: 'nats://u:p%40ss@h:4222' })).toMatchObject({ pass: 'p@ss' });
  });

  it('passes a token and the TLS files through', () => {
    expect(natsConnectionOptions({ nats_url: 'tls://h:4222', nats_token: 't', nats_tls: { ca_file: '/ca.pem', cert_file: '/c.pem', key_file: '/k.pem' } })).toEqual({
      servers: ['tls://h:4222'], token: 't', tls: { caFile: '/ca.pem', certFile: '/c.pem', keyFile: '/k.pem' },
    });
  });

  it('tls:// alone requires TLS with the system CAs', () => {
    expect(natsConnectionOptions({ nats_url: 'tls://h:4224' })).toEqual({ servers: ['tls://h:4224'], tls: {} });
  });

  it('accepts host:port without a scheme', () => {
    expect(natsConnectionOptions({ nats_url: '127.0.0.1:4222' }).servers).toEqual(['nats://127.0.0.1:4222']);
  });

  it.each([
    [{ nats_url: 'nats://h', nats_token: 't', nats_user: 'u' }, 'nats_token', /either a token or a user\/password/],
    [{ nats_url: ' , ' }, 'nats_url', /names no server/],
    [{ nats_url: 'http://h:4222' }, 'nats_url', /scheme must be nats:\/\/ or tls:\/\//],
    [{ nats_url: 'nats://h', nats_tls: { cert_file: '/c.pem' } }, 'nats_tls', /both cert_file and key_file/],
  ])('refuses %j, naming the key', (settings, key, reason) => {
    const err = refusal(settings);
    expect(err).toBeInstanceOf(NatsConfigError);
    expect(err?.code).toBe('NATS_CONFIG_INVALID');
    expect(err?.key).toBe(key);
    expect(err?.message).toMatch(reason);
  });

  it('never repeats a password in its refusal', () => {
    const err = refusal({ nats_url: 'http://u:secret@h' });
    expect(err?.message).toMatch(/scheme/);
    expect(err?.message).not.toContain('secret');
  });
});
