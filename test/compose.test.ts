// deploy/compose.yaml read as a file, a check that needs no engine (the container test
// runs it for real where one is): every image is built here (nothing but the Debian base
// is pulled), the nodes wait for a healthy PostgreSQL, run read-only with only
// NET_BIND_SERVICE, keep their files in volumes and publish DNS on loopback only; a dig
// client is there to run, outside what `up` starts.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { required } from './helpers/required.ts';

const DEPLOY = resolve(import.meta.dirname, '../deploy');

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string; network?: string };
  depends_on?: Record<string, { condition: string }>;
  read_only?: boolean;
  cap_drop?: string[];
  cap_add?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  profiles?: string[];
}

const compose = parseYaml(readFileSync(join(DEPLOY, 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const { services } = compose;

describe('deploy/compose.yaml', () => {
  it('runs PostgreSQL, NATS, two nodes and a dig client, every image built from a Dockerfile that exists', () => {
    expect(Object.keys(services).sort()).toEqual(['dig', 'nats', 'node-a', 'node-b', 'postgres']);
    expect(services.dig.profiles).toEqual(['tools']);
    for (const name of ['postgres', 'nats', 'node-a', 'node-b']) expect(services[name].profiles, name).toBeUndefined();
    for (const [name, service] of Object.entries(services)) {
      const build = required(service.build, `a build section for ${name}`);
      expect(existsSync(join(DEPLOY, build.context, build.dockerfile)), name).toBe(true);
      expect(build.network, name).toBe('host');
    }
    for (const file of ['postgres.Dockerfile', 'nats.Dockerfile', 'dig.Dockerfile']) {
      expect(readFileSync(join(DEPLOY, file), 'utf8')).toMatch(/apt-get install -y --no-install-recommends (postgresql-15|nats-server|bind9-dnsutils)/);
    }
  });

  it('gives each node the database, a volume of its own, loopback-published DNS and the sidecar hardening', () => {
    for (const name of ['node-a', 'node-b']) {
      const node = services[name];
      expect(node.depends_on?.postgres.condition).toBe('service_healthy');
      expect(node.environment?.PRESENCE_DNS_DATABASE_URL).toMatch(/^postgres:\/\/.*@postgres:5432\//);
      expect(node.environment?.PRESENCE_DNS_REGISTRAR_CELL_ID).toBe(name);
      expect(node.read_only).toBe(true);
      expect(node.cap_drop).toEqual(['ALL']);
      expect(node.cap_add).toEqual(['NET_BIND_SERVICE']);
      expect(node.volumes).toContain(`${name}-data:/var/lib/presence-dns`);
      expect(compose.volumes).toHaveProperty(`${name}-data`);
      for (const port of node.ports ?? []) expect(port).toMatch(/^127\.0\.0\.1:/);
    }
  });
});
