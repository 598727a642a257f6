import { describe, expect, it } from 'vitest';
import { NatsConfigError, natsConnectionOptions, redactUrl } from '../../src/routes/nats-bus.ts';

describe('natsConnectionOptions', () => {
  it('takes credentials out of a CF-style NATS URL list', () => {
    expect(natsConnectionOptions({ url: 'nats://nats:s3cret@10.0.0.5:4222, nats://nats:s3cret@10.0.0.6:4222' })).toEqual({
      servers: ['nats://10.0.0.5:4222', 'nats://10.0.0.6:4222'], user: 'nats', pass: 's3cret',
    });
  });

  it('explicit nats_user / nats_password win over the URL', () => {
    expect(natsConnectionOptions({ url: 'nats://a:b@h:4222', user: 'u', password: 'p' })).toMatchObject({ user: 'u', pass: 'p' });
  });

  it('decodes percent-escaped passwords', () => {
    expect(natsConnectionOptions({ url: 'nats://u:p%40ss@h:4222' })).toMatchObject({ pass: 'p@ss' });
  });

  it('passes a token and the TLS files through', () => {
    expect(natsConnectionOptions({ url: 'tls://h:4222', token: 't', tls: { ca_file: '/ca.pem', cert_file: '/c.pem', key_file: '/k.pem' } })).toEqual({
      servers: ['tls://h:4222'], token: 't', tls: { caFile: '/ca.pem', certFile: '/c.pem', keyFile: '/k.pem' },
    });
  });

  it('tls:// alone requires TLS with the system CAs', () => {
    expect(natsConnectionOptions({ url: 'tls://h:4224' })).toEqual({ servers: ['tls://h:4224'], tls: {} });
  });

  it('a client certificate without its key is refused', () => {
    expect(() => natsConnectionOptions({ url: 'nats://h', tls: { cert_file: '/c.pem' } })).toThrow(/both cert_file and key_file/);
  });

  it('accepts host:port without a scheme', () => {
    expect(natsConnectionOptions({ url: '127.0.0.1:4222' }).servers).toEqual(['nats://127.0.0.1:4222']);
  });

  it('refuses a token together with a user, and an empty URL, with a code', () => {
    expect(() => natsConnectionOptions({ url: 'nats://h', token: 't', user: 'u' })).toThrow(/either nats_token or a user/);
    expect(() => natsConnectionOptions({ url: ' , ' })).toThrow(NatsConfigError);
    const err = (() => {
      try {
        natsConnectionOptions({ url: 'nats://u:secret@' });
        return null;
      } catch (e) {
        return e as NatsConfigError;
      }
    })();
    expect(err?.code).toBe('ROUTES_NATS_CONFIG_INVALID');
    expect(err?.message).toMatch(/has no host|is not a URL/);
    expect(err?.message).not.toContain('secret');
  });
});

describe('redactUrl', () => {
  it('hides credentials in every URL of a list', () => {
    expect(redactUrl('nats://u:p@a:4222,nats://u:p@b:4222')).toBe('nats://***@a:4222,nats://***@b:4222');
  });
});
