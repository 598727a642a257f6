// The `routes` section of the config: on when nats_url is set, and the NATS settings
// checked at load time (so `validate-config` reports them, not the first connect).
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';

const routes = (overrides: string[], env: NodeJS.ProcessEnv = {}) => loadConfig({ overrides, env }).config.routes;

describe('routes config', () => {
  it('is off by default and on as soon as nats_url is set', () => {
    expect(routes([]).enabled).toBe(false);
    expect(routes(['routes.nats_url=nats://10.0.16.11:4222']).enabled).toBe(true);
    expect(routes([], { PRESENCE_DNS_ROUTES_NATS_URL: 'nats://10.0.16.11:4222' }).enabled).toBe(true);
  });

  it('enabled: false switches it off while keeping the URL', () => {
    expect(routes(['routes.nats_url=nats://h:4222', 'routes.enabled=false'])).toMatchObject({ enabled: false, nats_url: 'nats://h:4222' });
  });

  it.each([
    [['routes.enabled=true'], /routes\.nats_url: routes\.enabled is true, so the NATS URL/],
    [['routes.nats_url=http://nats:pw@h:4222'], /routes\.nats_url: "http:\/\/nats:\*\*\*@h:4222": the scheme must be nats:\/\/ or tls:\/\//],
    [['routes.nats_url=nats://h', 'routes.nats_token=t', 'routes.nats_user=u'], /routes\.nats_token: set either a token or a user\/password/],
    [['routes.nats_url=nats://h', 'routes.nats_tls.key_file=/k.pem'], /routes\.nats_tls: a client certificate needs both/],
  ])('refuses %j at load time, naming the key', (overrides, message) => {
    expect(() => routes(overrides)).toThrow(message);
  });
});
