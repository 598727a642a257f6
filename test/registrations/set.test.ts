// The registration set over real files in a temporary directory, watched with chokidar:
// add, edit, bad edit (previous good version stays), delete, rename-over, duplicates,
// API entries persisted atomically and restored at start.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from '../../src/admin/index.ts';
import { API_STATE_FILE, RegistrationConflictError, RegistrationError, RegistrationSet, type Registration, type RegistrationSource } from '../../src/registrations/index.ts';
import { tempDir } from '../helpers/daemon.ts';

interface Harness {
  dir: string;
  set: RegistrationSet;
  metrics: Registry;
  logs: Array<{ level: number; msg: string; file?: string; err?: string }>;
  /** Resolves with the next `change` list. */
  nextChange(): Promise<Registration[]>;
  /** Resolves with the next rejection. */
  nextRejection(): Promise<{ source: string; error: string }>;
}

const running: RegistrationSet[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

async function harness(dir = tempDir('registrations-'), start = true): Promise<Harness> {
  const logs: Harness['logs'] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line) as Harness['logs'][number]) });
  const metrics = new Registry();
  const set = new RegistrationSet({ dir, logger, metrics, debounceMs: 20 });
  running.push(set);
  const within = <T>(what: string, register: (resolve: (v: T) => void) => void) => new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within 10 s`)), 10_000);
    register((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
  const h: Harness = {
    dir, set, metrics, logs,
    nextChange: () => within('change', (resolve) => set.once('change', resolve)),
    nextRejection: () => within('rejection', (resolve) => set.once('rejected', resolve)),
  };
  if (start) await set.start();
  return h;
}

function entry(id: string, ip = '10.0.0.1', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, group: 'web', network: 'default', deployment: 'cf', ip, ...extra };
}

function yamlFile(...entries: Array<Record<string, unknown>>): string {
  return `instances:\n${entries.map((e) => `  - ${JSON.stringify(e)}\n`).join('')}`;
}

const ids = (list: Registration[]) => list.map((r) => r.id);
const errorsTotal = (h: Harness, source: string) => h.metrics.value('presence_dns_registration_errors_total', { source });

describe('RegistrationSet files', () => {
  it('loads the directory at start (yaml, yml, json) and skips other and hidden files', async () => {
    const dir = tempDir('registrations-');
    writeFileSync(join(dir, 'a.yaml'), yamlFile(entry('a1'), entry('a2')));
    writeFileSync(join(dir, 'b.yml'), yamlFile(entry('b1')));
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ instances: [entry('c1')] }));
    writeFileSync(join(dir, 'notes.txt'), 'not a registration');
    writeFileSync(join(dir, '.hidden.yaml'), yamlFile(entry('h1')));
    const h = await harness(dir, false);
    const initial = h.nextChange();
    await h.set.start();
    expect(ids(await initial)).toEqual(['a1', 'a2', 'b1', 'c1']);
    // What the registrar and the route emitter are handed.
    const source: RegistrationSource = h.set;
    expect(ids(source.list())).toEqual(['a1', 'a2', 'b1', 'c1']);
    expect(h.set.origin('a2')).toEqual({ kind: 'file', path: join(dir, 'a.yaml') });
    expect(await h.metrics.render()).toContain('presence_dns_registrations 4');
  });

  it('creates a missing directory and starts empty without emitting', async () => {
    const dir = join(tempDir('registrations-'), 'instances.d');
    const h = await harness(dir);
    expect(existsSync(dir)).toBe(true);
    expect(h.set.list()).toEqual([]);
  });

  it('follows add, edit and delete of files', async () => {
    const h = await harness();
    const path = join(h.dir, 'web.yaml');
    let change = h.nextChange();
    writeFileSync(path, yamlFile(entry('w1')));
    expect(ids(await change)).toEqual(['w1']);

    change = h.nextChange();
    writeFileSync(path, yamlFile(entry('w1', '10.0.0.9'), entry('w2')));
    const edited = await change;
    expect(edited.map((r) => [r.id, r.ip])).toEqual([['w1', '10.0.0.9'], ['w2', '10.0.0.1']]);

    change = h.nextChange();
    unlinkSync(path);
    expect(await change).toEqual([]);
    expect(h.set.origin('w1')).toBeUndefined();
  });

  it('rejects a bad edit whole, keeps the previous good version, logs, counts and reports it', async () => {
    const h = await harness();
    const path = join(h.dir, 'web.yaml');
    const change = h.nextChange();
    writeFileSync(path, yamlFile(entry('w1'), entry('w2')));
    await change;

    const rejection = h.nextRejection();
    // One good new entry and one bad one: nothing of the new version may be applied.
    writeFileSync(path, yamlFile(entry('w1'), entry('w2'), entry('w3'), entry('w4', '10.0.0.4', { ports: { http: 70000 } })));
    const { error } = await rejection;
    expect(error).toBe(`${path}: instances[3] (id w4): ports.http: must be 1-65535, got 70000`);
    expect(ids(h.set.list())).toEqual(['w1', 'w2']);
    expect(await errorsTotal(h, 'file')).toBe(1);
    expect(h.logs.find((l) => l.level === 50 && l.file === path)?.err).toBe(error);
    expect(h.set.status().rejectedFiles).toEqual({ [path]: error });
    expect(await h.metrics.render()).toContain('presence_dns_registration_files_rejected 1');

    const fixed = h.nextChange();
    writeFileSync(path, yamlFile(entry('w1'), entry('w3')));
    expect(ids(await fixed)).toEqual(['w1', 'w3']);
    expect(h.set.status().rejectedFiles).toEqual({});
  });

  it('rejects a new bad file without touching the others', async () => {
    const h = await harness();
    let change = h.nextChange();
    writeFileSync(join(h.dir, 'good.yaml'), yamlFile(entry('g1')));
    await change;
    const rejection = h.nextRejection();
    writeFileSync(join(h.dir, 'bad.yaml'), 'instances: [\n');
    expect((await rejection).error).toMatch(/bad\.yaml: \(file\): does not parse as YAML/);
    expect(ids(h.set.list())).toEqual(['g1']);
    change = h.nextChange();
    writeFileSync(join(h.dir, 'bad.yaml'), yamlFile(entry('b1')));
    expect(ids(await change)).toEqual(['b1', 'g1']);
  });

  it('takes a file renamed over the old one (editors and atomic writers)', async () => {
    const h = await harness();
    const path = join(h.dir, 'web.yaml');
    let change = h.nextChange();
    writeFileSync(path, yamlFile(entry('w1')));
    await change;
    change = h.nextChange();
    writeFileSync(join(h.dir, '.web.yaml.tmp'), yamlFile(entry('w1', '10.9.9.9')));
    renameSync(join(h.dir, '.web.yaml.tmp'), path);
    expect((await change).map((r) => r.ip)).toEqual(['10.9.9.9']);
  });

  it('follows a file renamed to another name without a duplicate-id rejection', async () => {
    const h = await harness();
    const change = h.nextChange();
    writeFileSync(join(h.dir, 'a.yaml'), yamlFile(entry('w1')));
    await change;
    renameSync(join(h.dir, 'a.yaml'), join(h.dir, 'b.yaml'));
    // The id moves between files; the set's content is unchanged, so wait for the origin.
    await expect.poll(() => h.set.origin('w1'), { timeout: 10_000 }).toEqual({ kind: 'file', path: join(h.dir, 'b.yaml') });
    expect(ids(h.set.list())).toEqual(['w1']);
    expect(await errorsTotal(h, 'file')).toBe(0);
  });

  it('rejects a file repeating an id of another file, naming both, and takes it once the id is freed', async () => {
    const h = await harness();
    let change = h.nextChange();
    writeFileSync(join(h.dir, 'a.yaml'), yamlFile(entry('w1')));
    await change;
    const rejection = h.nextRejection();
    writeFileSync(join(h.dir, 'b.yaml'), yamlFile(entry('w2'), entry('w1', '10.0.0.2')));
    expect((await rejection).error).toBe(`${join(h.dir, 'b.yaml')}: instances[1] (id w1): id: already registered by the file ${join(h.dir, 'a.yaml')}`);
    expect(h.set.list().map((r) => [r.id, r.ip])).toEqual([['w1', '10.0.0.1']]);

    change = h.nextChange();
    unlinkSync(join(h.dir, 'a.yaml'));
    expect((await change).map((r) => [r.id, r.ip])).toEqual([['w1', '10.0.0.2'], ['w2', '10.0.0.1']]);
    expect(h.set.origin('w1')).toEqual({ kind: 'file', path: join(h.dir, 'b.yaml') });
  });

  it('keeps the set when the directory disappears (an unmounted volume is not a deregistration)', async () => {
    const h = await harness();
    const change = h.nextChange();
    writeFileSync(join(h.dir, 'a.yaml'), yamlFile(entry('w1')));
    await change;
    rmSync(h.dir, { recursive: true });
    await expect.poll(() => h.logs.some((l) => l.msg.startsWith('cannot list the registrations directory')), { timeout: 10_000 }).toBe(true);
    expect(ids(h.set.list())).toEqual(['w1']);
  });
});

describe('RegistrationSet reload (SIGHUP)', () => {
  it('reads the directory at once, without waiting for the watcher', async () => {
    const dir = tempDir('registrations-');
    const set = new RegistrationSet({ dir, logger: pino({ level: 'silent' }), metrics: new Registry(), debounceMs: 60_000 });
    running.push(set);
    await set.start();
    writeFileSync(join(dir, 'web.yaml'), yamlFile(entry('hup-1')));
    expect(ids(set.list())).toEqual([]);
    set.reload();
    expect(ids(set.list())).toEqual(['hup-1']);
  });
});

describe('RegistrationSet API entries', () => {
  it('puts, replaces and deletes, emitting each real change and persisting atomically', async () => {
    const h = await harness();
    const changes: string[][] = [];
    h.set.on('change', (list) => changes.push(ids(list)));
    const reg = h.set.put('api-1', entry('api-1'));
    expect(reg.id).toBe('api-1');
    expect(h.set.origin('api-1')).toEqual({ kind: 'api' });
    h.set.put('api-1', entry('api-1'));
    h.set.put('API-2', { ...entry('x'), id: undefined });
    expect(changes).toEqual([['api-1'], ['api-1', 'api-2']]);
    const state = JSON.parse(readFileSync(join(h.dir, API_STATE_FILE), 'utf8')) as { instances: Array<{ id: string }> };
    expect(state.instances.map((i) => i.id)).toEqual(['api-1', 'api-2']);
    expect(readdirSync(h.dir).filter((f) => f.includes('.tmp'))).toEqual([]);

    expect(h.set.delete('api-1')).toBe(true);
    expect(h.set.delete('api-1')).toBe(false);
    expect(changes.at(-1)).toEqual(['api-2']);
  });

  it('rejects a bad entry or a mismatched id without storing anything', async () => {
    const h = await harness();
    expect(() => h.set.put('api-1', entry('api-1', 'not-an-ip'))).toThrow(RegistrationError);
    expect(() => h.set.put('api-1', entry('api-9'))).toThrow('PUT /v1/instances/api-1: id: "api-9" differs from the id in the path "api-1"');
    expect(() => h.set.put('api-1', 'text')).toThrow('PUT /v1/instances/api-1: (entry): the body must be a JSON object');
    expect(h.set.list()).toEqual([]);
    expect(existsSync(join(h.dir, API_STATE_FILE))).toBe(false);
    expect(await errorsTotal(h, 'api')).toBe(3);
  });

  it('refuses to put over or delete an id that a file owns, and rejects a file taking an API id', async () => {
    const h = await harness();
    const change = h.nextChange();
    writeFileSync(join(h.dir, 'a.yaml'), yamlFile(entry('w1')));
    await change;
    expect(() => h.set.put('w1', entry('w1'))).toThrow(RegistrationConflictError);
    expect(() => h.set.delete('w1')).toThrow(`DELETE /v1/instances/w1: id: the instance comes from the file ${join(h.dir, 'a.yaml')}; remove it from that file`);

    h.set.put('api-1', entry('api-1'));
    const rejection = h.nextRejection();
    writeFileSync(join(h.dir, 'b.yaml'), yamlFile(entry('api-1', '10.0.0.2')));
    expect((await rejection).error).toContain('id: already registered by the API (PUT /v1/instances/api-1)');
    // Freeing the id through the API lets the waiting file in.
    const taken = h.nextChange();
    h.set.delete('api-1');
    expect((await taken).map((r) => [r.id, r.ip])).toEqual([['api-1', '10.0.0.2'], ['w1', '10.0.0.1']]);
    expect(h.set.origin('api-1')).toEqual({ kind: 'file', path: join(h.dir, 'b.yaml') });
  });

  it('restores API entries at start, and moves a corrupt state file aside instead of overwriting it', async () => {
    const first = await harness();
    first.set.put('api-1', entry('api-1', '10.1.1.1', { ports: { http: 80 }, routes: ['a.example.com'] }));
    const before = first.set.list();
    await first.set.stop();

    const second = await harness(first.dir);
    expect(second.set.list()).toEqual(before);
    expect(second.set.origin('api-1')).toEqual({ kind: 'api' });
    await second.set.stop();

    writeFileSync(join(first.dir, API_STATE_FILE), '{"instances": [');
    const third = await harness(first.dir);
    expect(third.set.list()).toEqual([]);
    expect(readdirSync(first.dir).filter((f) => f.startsWith(`${API_STATE_FILE}.rejected-`))).toHaveLength(1);
    expect(await errorsTotal(third, 'state')).toBe(1);
  });

  it('restores API entries beside file entries', async () => {
    const dir = tempDir('registrations-');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'a.yaml'), yamlFile(entry('w1')));
    const first = await harness(dir);
    first.set.put('api-1', entry('api-1'));
    await first.set.stop();
    const second = await harness(dir);
    expect(ids(second.set.list())).toEqual(['api-1', 'w1']);
  });
});
