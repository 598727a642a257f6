// The Dockerfile read as text, a check that needs no engine (test/e2e/container.test.ts
// builds and runs the image where one is): its structure (docs/operating.md), every file
// it copies exists, and the config it bakes in is valid, listens on 53 and keeps the
// admin API on loopback.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import { required } from './helpers/required.ts';

const ROOT = resolve(import.meta.dirname, '..');

interface Instruction {
  op: string;
  args: string;
}

interface Stage {
  from: string;
  name: string | null;
  instructions: Instruction[];
}

/** Instructions per stage, with `\` continuations joined and comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [op, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (op.toUpperCase() === 'FROM') {
      const m = required(/^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args), `an image in "${line}"`);
      stages.push({ from: m[1], name: m.at(2) ?? null, instructions: [] });
    } else {
      required(stages.at(-1), `a FROM before "${line}"`).instructions.push({ op: op.toUpperCase(), args });
    }
  }
  return stages;
}

const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const runtime = required(stages.at(-1), 'a stage');
const all = (stage: Stage, op: string) => stage.instructions.filter((i) => i.op === op).map((i) => i.args);

describe('Dockerfile', () => {
  it('is multi-stage with a small Node runtime image', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(runtime.from).toMatch(/^node:(2[2-9]|[3-9]\d)-(slim|alpine)/);
  });

  it('runs the compiled dist/ with production dependencies only, installed reproducibly', () => {
    const installs = stages.flatMap((s) => all(s, 'RUN').filter((r) => r.includes('npm ci')).map((r) => ({ stage: s, run: r })));
    const modules = all(runtime, 'COPY').find((c) => c.includes('/app/node_modules'));
    const depsStage = stages.find((s) => modules?.startsWith(`--from=${s.name} `));
    expect(depsStage, 'node_modules copied from a stage').toBeDefined();
    expect(installs.filter((i) => i.stage === depsStage).map((i) => i.run).join(' ')).toMatch(/npm ci\b.*--omit=dev/);
    // The runtime installs nothing itself and gets dist/ from the stage that compiled it.
    expect(installs.filter((i) => i.stage === runtime)).toEqual([]);
    const dist = all(runtime, 'COPY').find((c) => c.includes('/app/dist'));
    const buildStage = stages.find((s) => dist?.startsWith(`--from=${s.name} `));
    expect(all(required(buildStage, 'the stage dist/ is copied from'), 'RUN')).toContain('npm run build');
    expect(all(runtime, 'COPY').some((c) => /^src\b/.test(c))).toBe(false);
  });

  it('runs as a non-root user with CAP_NET_BIND_SERVICE for port 53', () => {
    const users = all(runtime, 'USER');
    expect(users).toHaveLength(1);
    expect(users[0]).not.toMatch(/^(root|0)(:|$)/);
    const runIndex = runtime.instructions.findIndex((i) => i.op === 'RUN' && i.args.includes('setcap cap_net_bind_service=+ep'));
    const userIndex = runtime.instructions.findIndex((i) => i.op === 'USER');
    expect(runIndex).toBeGreaterThanOrEqual(0);
    expect(runIndex).toBeLessThan(userIndex);
  });

  it('exposes DNS over UDP and TCP on 53', () => {
    expect(all(runtime, 'EXPOSE').join(' ').split(/\s+/).sort()).toEqual(['53/tcp', '53/udp']);
  });

  it('checks health on the admin API\'s /health', () => {
    const [check] = all(runtime, 'HEALTHCHECK');
    expect(check).toMatch(/CMD .*http:\/\/127\.0\.0\.1:8053\/health/);
  });

  it('copies only files that exist, and starts the bin with the config it copies', () => {
    for (const stage of stages) {
      for (const copy of all(stage, 'COPY').filter((c) => !c.startsWith('--from='))) {
        const sources = copy.split(/\s+/).slice(0, -1);
        // A pattern (e.g. the optional npm-ca.pe[m]) may match nothing.
        for (const source of sources.filter((s) => !/[*?[]/.test(s))) expect(existsSync(join(ROOT, source)), `COPY ${source}`).toBe(true);
      }
    }
    const [entrypoint] = all(runtime, 'ENTRYPOINT');
    const [cmd] = all(runtime, 'CMD');
    expect(JSON.parse(entrypoint)).toEqual(['node', '--max-semi-space-size=1', '/app/bin/presence-dns.js']);
    const args = JSON.parse(cmd) as string[];
    expect(args.slice(0, 2)).toEqual(['start', '--config']);
    expect(all(runtime, 'COPY')).toContain(`config/container.yaml ${args[2]}`);
  });

  it('bakes in a valid config that listens on 53 and keeps the admin API on loopback', () => {
    const { config } = loadConfig({ file: join(ROOT, 'config/container.yaml') });
    expect(config.dns.listen).toEqual([{ address: '0.0.0.0', port: 53 }]);
    expect(config.admin).toMatchObject({ address: '127.0.0.1', port: 8053 });
  });

  it('keeps the build context small', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const entry of ['.git', 'node_modules', 'test']) expect(ignored).toContain(entry);
  });
});
