import { describe, expect, it } from 'vitest';
import { redactUrl } from '../../src/util/redact.ts';

describe('redactUrl', () => {
  it('masks the password and keeps the user', () => {
    expect(redactUrl('postgres://presence:s3cret@db.internal:5432/presence')).toBe('postgres://presence:***@db.internal:5432/presence');
  });

  it('masks a lone token whole', () => {
    expect(redactUrl('nats://t0ken@nats:4222')).toBe('nats://***@nats:4222');
  });

  it('masks every URL of a list', () => {
    expect(redactUrl('nats://u:p@a:4222,nats://u:p@b:4222')).toBe('nats://u:***@a:4222,nats://u:***@b:4222');
  });

  it('leaves a URL without credentials, and text that is no URL, as they are', () => {
    expect(redactUrl('postgres://db.internal/presence')).toBe('postgres://db.internal/presence');
    expect(redactUrl('not a url')).toBe('not a url');
  });

  it('masks credentials even in text that does not parse as a URL', () => {
    expect(redactUrl('http://u:secret@h:port:bad')).not.toContain('secret');
  });
});
