// The store over real files, with its real topology worker: loads topology and alias
// files, keeps the last good topology when a reload fails and reports the failure,
// follows the file and the alias directory, and survives the worker's death.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from '../../src/admin/metrics.ts';
import { instanceTags, tagsOf } from '../../src/image/cache-tags.ts';
import { parseCriteria } from '../../src/image/criteria.ts';
import type { Instance } from '../../src/image/instance.ts';
import type { ControlPlane } from '../../src/control/host.ts';
import type { TopologyStore } from '../../src/dns/topology.ts';
import { tempDir, waitFor } from '../helpers/daemon.ts';
import { required } from '../helpers/required.ts';
import { followFiles, topologyJson } from '../helpers/topology.ts';

interface Harness {
  store: TopologyStore;
  control: ControlPlane;
  metrics: Registry;
  file: string;
  aliasesDir: string;
}

const planes: ControlPlane[] = [];
afterEach(async () => {
  await Promise.all(planes.splice(0).map((c) => c.stop()));
});

async function harness(topology: string | null, aliasFiles: Record<string, string> | null = {}): Promise<Harness> {
  const dir = tempDir();
  const file = join(dir, 'topology.json');
  const aliasesDir = join(dir, 'aliases.d');
  if (aliasFiles) mkdirSync(aliasesDir);
  if (topology !== null) writeFileSync(file, topology);
  for (const [name, text] of Object.entries(aliasFiles ?? {})) writeFileSync(join(aliasesDir, name), text);
  const metrics = new Registry();
  const { store, control } = await followFiles(file, aliasesDir, metrics);
  planes.push(control);
  return { store, control, metrics, file, aliasesDir };
}

/** The view the store serves: one is loaded before the harness returns. */
const inService = (store: TopologyStore) => required(store.current, 'a topology in service');
const ids = (h: Harness, name: string) =>
  inService(h.store).select(parseCriteria(name.split('.'), 'bosh')).map((i) => i.id).sort();
/** The tag of an answer about this one instance by its id name. */
const idTag = (i: Instance) => instanceTags(i)[1];
const failures = (h: Harness) => h.metrics.value('presence_dns_topology_reload_failures_total');

describe('TopologyStore', () => {
  it('loads the file and reports it', async () => {
    const h = await harness(topologyJson([{ id: 'a', ip: '10.0.0.1' }], {}, 3));
    expect(h.store.status()).toMatchObject({ loaded: true, version: 3, records: 1, lastError: null, workerUp: true });
    expect(await h.metrics.value('presence_dns_topology_records')).toBe(1);
    expect(ids(h, '*.web.default.cf')).toEqual(['a']);
  });

  it('is not loaded, with the reason, while the file is missing', async () => {
    const h = await harness(null);
    expect(h.store.current).toBeNull();
    expect(h.store.status().loaded).toBe(false);
    expect(h.store.status().lastError).toBe('no topology loaded yet');
  });

  it('serves the good rows of a file with a bad one', async () => {
    const text = JSON.stringify({
      record_keys: ['id', 'instance_group', 'network', 'deployment', 'ip', 'domain'],
      record_infos: [['a', 'web', 'default', 'cf', '10.0.0.1', 'bosh.'], ['b', 'web', 'default', 'cf', 'not-an-ip', 'bosh.']],
    });
    const h = await harness(text);
    expect(h.store.status().records).toBe(1);
    expect(ids(h, '*.web.default.cf')).toEqual(['a']);
  });

  it.each([
    ['corrupt', '{"version": 2, "record_keys": [}', 'not valid JSON'],
    ['truncated', topologyJson([{ id: 'new', ip: '10.0.0.9' }], {}, 2).slice(0, 40), 'not valid JSON'],
    ['wrong shape', '{"version": 2}', 'record_keys must be a list'],
  ])('keeps the last good topology when the file turns %s', async (_what, bad, reason) => {
    const h = await harness(topologyJson([{ id: 'a', ip: '10.0.0.1' }], {}, 1));
    const before = h.store.current;
    writeFileSync(h.file, bad);
    h.control.reload();
    await waitFor(async () => (await failures(h)) >= 1, 20_000, 'the rejection');
    expect(h.store.current).toBe(before);
    expect(h.store.status()).toMatchObject({ loaded: true, version: 1, records: 1 });
    expect(h.store.status().lastError).toContain(reason);

    writeFileSync(h.file, topologyJson([{ id: 'b', ip: '10.0.0.2' }], {}, 2));
    h.control.reload();
    await waitFor(() => h.store.status().version === 2, 20_000, 'the good file');
    expect(h.store.status().lastError).toBeNull();
    expect(ids(h, '*.web.default.cf')).toEqual(['b']);
  });

  it('keeps the last good topology when the file is deleted', async () => {
    const h = await harness(topologyJson([{ id: 'a', ip: '10.0.0.1' }]));
    rmSync(h.file);
    await waitFor(() => (h.store.status().lastError ?? '').includes('ENOENT'), 20_000, 'the missing file to be reported');
    expect(ids(h, '*.web.default.cf')).toEqual(['a']);
  });

  it('serves aliases from the aliases directory, YAML and JSON, and counts a broken alias file', async () => {
    const h = await harness(topologyJson([{ id: 'a', ip: '10.0.0.1' }]), {
      'one.yaml': 'web.service.internal:\n  - q-s0.web.default.cf.bosh\n',
      'two.json': JSON.stringify({ '_.w.internal': ['_.web.default.cf.bosh'] }),
      'broken.yaml': 'a: [unclosed\n',
      'ignored.txt': 'not: [an alias file',
    });
    expect(inService(h.store).aliasTargets('web.service.internal')).toEqual(['q-s0.web.default.cf.bosh']);
    expect(inService(h.store).aliasTargets('a.w.internal')).toEqual(['a.web.default.cf.bosh']);
    expect(await failures(h)).toBe(1);
  });

  it('watches an aliases directory created after the start', async () => {
    const h = await harness(topologyJson([{ id: 'a', ip: '10.0.0.1' }]), null);
    mkdirSync(h.aliasesDir);
    writeFileSync(join(h.aliasesDir, 'late.yaml'), 'late.internal:\n  - a.web.default.cf.bosh\n');
    await waitFor(() => inService(h.store).aliasTargets('late.internal') !== null, 20_000, 'the late alias file');
    expect(inService(h.store).aliasTargets('late.internal')).toEqual(['a.web.default.cf.bosh']);
    rmSync(join(h.aliasesDir, 'late.yaml'));
    await waitFor(() => inService(h.store).aliasTargets('late.internal') === null, 20_000, 'the alias to go');
  });

  it('reloads on its own when the watched file changes, telling listeners what changed', async () => {
    const h = await harness(topologyJson([{ id: 'a', ip: '10.0.0.1' }, { id: 'c', ip: '10.0.0.3' }], {}, 1));
    const before = inService(h.store);
    const a = required(before.get('a.web.default.cf.bosh'), 'instance a');
    const c = required(before.get('c.web.default.cf.bosh'), 'instance c');
    const changes: unknown[] = [];
    h.store.onChange((change) => changes.push(change === 'replaced' ? change : Array.from(change.tags).sort()));
    writeFileSync(h.file, topologyJson([{ id: 'b', ip: '10.0.0.2' }, { id: 'c', ip: '10.0.0.3' }], {}, 2));
    await waitFor(() => inService(h.store).version === 2, 20_000, 'the new version');
    expect(ids(h, '*.web.default.cf')).toEqual(['b', 'c']);
    // Only what differs: the tags of a (gone) and b (new); the cached answers about c alone stay.
    const b = required(inService(h.store).get('b.web.default.cf.bosh'), 'instance b');
    expect(changes).toEqual([[...tagsOf([a, b])].sort()]);
    expect(tagsOf([c]).some((tag) => tag === idTag(c))).toBe(true);
    expect((changes[0] as number[]).includes(idTag(c))).toBe(false);
  });

  it('keeps answering from the view in service while a dead worker is restarted', async () => {
    const h = await harness(topologyJson([{ id: 'a', ip: '10.0.0.1' }], {}, 1));
    const view = h.store.current;
    const worker = (h.control as unknown as { worker: { terminate(): Promise<number> } }).worker;
    await worker.terminate();
    expect(h.store.current).toBe(view);
    expect(ids(h, '*.web.default.cf')).toEqual(['a']);
    await waitFor(() => h.store.status().workerRestarts === 1 && h.store.status().workerUp, 20_000, 'the restart');
    expect(await h.metrics.value('presence_dns_topology_worker_restarts_total')).toBe(1);
    writeFileSync(h.file, topologyJson([{ id: 'b', ip: '10.0.0.2' }], {}, 2));
    await waitFor(() => inService(h.store).version === 2, 20_000, 'the restarted worker to follow the file');
  });
});

describe('image buffers', () => {
  it('come back to the worker once the DNS thread has moved on, so reloads reuse them', async () => {
    const h = await harness(topologyJson([{ id: 'a', ip: '10.0.0.1' }], {}, 1));
    for (let v = 2; v <= 6; v++) {
      writeFileSync(h.file, topologyJson([{ id: `a${v}`, ip: `10.0.0.${v}` }], {}, v));
      await waitFor(() => inService(h.store).version === v, 5000, `version ${v}`);
    }
    await waitFor(async () => (await h.metrics.value('presence_dns_topology_image_buffers_spare')) >= 1, 20_000, 'a released buffer');
    expect(await h.metrics.value('presence_dns_topology_image_buffers')).toBeLessThanOrEqual(2);
  });
});

describe('a small file-fed topology, read on the DNS thread', () => {
  it('is served, and followed, without a worker thread', async () => {
    const dir = tempDir();
    const file = join(dir, 'topology.json');
    writeFileSync(file, topologyJson([{ id: 'a', ip: '10.0.0.1' }], {}, 1));
    const { store, control } = await followFiles(file, join(dir, 'aliases.d'), new Registry(), 64 * 1024);
    planes.push(control);
    expect(control.status()).toMatchObject({ thread: 'main', workerUp: true });
    expect(inService(store).recordCount).toBe(1);
    writeFileSync(file, topologyJson([{ id: 'a', ip: '10.0.0.1' }, { id: 'b', ip: '10.0.0.2' }], {}, 2));
    await waitFor(() => inService(store).version === 2, 20_000, 'the change');
    expect(inService(store).recordCount).toBe(2);
    expect(control.status().thread).toBe('main');
  });

  it('moves to a worker thread before it reads a file that outgrew it, and goes on from the view in service', async () => {
    const dir = tempDir();
    const file = join(dir, 'topology.json');
    writeFileSync(file, topologyJson([{ id: 'a', ip: '10.0.0.1' }], {}, 1));
    const { store, control } = await followFiles(file, join(dir, 'aliases.d'), new Registry(), 2048);
    planes.push(control);
    expect(control.status().thread).toBe('main');
    const views: number[] = [];
    store.onChange(() => views.push(inService(store).version));
    const big = Array.from({ length: 100 }, (_, k) => ({ id: `n${k}`, ip: `10.0.1.${k}` }));
    writeFileSync(file, topologyJson(big, {}, 2));
    await waitFor(() => inService(store).version === 2 && control.status().thread === 'worker', 20_000, 'the big file, read by the worker');
    expect(inService(store).recordCount).toBe(100);
    // Never back to an older topology on the way.
    expect(views.every((v) => v >= 1)).toBe(true);
    expect(control.status()).toMatchObject({ workerUp: true, workerRestarts: 0, lastError: null });
  });
});
