// The topology state of the worker and the file it owns, on real files: a change costs a
// journal line (not a rewrite of the snapshot), a reader elsewhere follows the journal as
// deltas, the journal is compacted into a new snapshot once it has grown, a restart reads
// snapshot + journal (or the cached image of the snapshot), and a torn append is ignored.
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileSource } from '../../src/control/file-source.ts';
import { compileImage, ImageBuilder } from '../../src/image/builder.ts';
import { readImageCache } from '../../src/image/cache.ts';
import type { ToMain } from '../../src/control/protocol.ts';
import { parseTopology } from '../../src/control/reader.ts';
import { compactionThreshold, OwnedFile, TopologyState } from '../../src/control/state.ts';
import type { Instance } from '../../src/image/instance.ts';
import { instanceName } from '../../src/image/view.ts';
import { journalLine, journalPath } from '../../src/control/journal.ts';
import { tempDir, waitFor } from '../helpers/daemon.ts';
import { required } from '../helpers/required.ts';
import { syncedTopology, topologyJson, type TestInstance } from '../helpers/topology.ts';
import { silentLogger, unposted } from '../presence/fixtures.ts';

const CLUSTER = '8b0c7e3e-0000-4000-8000-00000000c1a5';

function instances(list: TestInstance[]): Instance[] {
  const read = parseTopology(topologyJson(list));
  if (!read.ok) throw new Error(read.error);
  return read.topology.instances;
}

function fleet(n: number): Instance[] {
  return instances(Array.from({ length: n }, (_, k) => ({ id: `n${k}`, group: `g${k % 7}`, ip: `10.1.${k >> 8}.${k & 255}`, index: k })));
}

/** A state that owns `file`, as the syncer's is, started from `initial`. */
function writer(file: string, initial: Instance[]) {
  const posted: ToMain[] = [];
  const state = new TopologyState({ domains: [], post: (m) => posted.push(m), logger: silentLogger });
  const owned = new OwnedFile(file, CLUSTER, silentLogger, state.counts);
  state.own(owned);
  state.replace(compileImage({ version: 1, instances: initial, aliases: new Map(), ptrRecords: null, generatedAt: null, source: null, cluster: null }));
  return { state, posted, owned };
}

const sources: FileSource[] = [];
afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.stop()));
});

/** Another node's worker reading the same file (a DNS-only sidecar pointed at it). */
async function reader(file: string) {
  const posted: ToMain[] = [];
  const state = new TopologyState({ domains: [], post: (m) => posted.push(m), logger: silentLogger });
  const source = new FileSource({ file, aliasesDir: join(file, '..', 'aliases.d'), state, logger: silentLogger, debounceMs: 10 });
  sources.push(source);
  await source.start();
  return { state, posted, source };
}

const ids = (list: Iterable<Instance>) => [...list].map((i) => i.id).sort();
const inService = (state: TopologyState) => required(state.current, 'a topology in service');
const instanceIn = (state: TopologyState, name: string) => required(inService(state).get(name), `${name} in service`);

describe('the file the syncer owns', () => {
  it('writes a snapshot once, then one journal line per change: bytes per change do not grow with the topology', () => {
    const perChange: number[] = [];
    for (const size of [100, 5000]) {
      const file = join(tempDir(), 'topology.json');
      const { state } = writer(file, fleet(size));
      const snapshot = statSync(file);
      const before = statSync(journalPath(file)).size;
      const moved = { ...instanceIn(state, `n3.g3.default.cf.bosh`), ip: '10.9.9.9' };
      state.apply(2, [], [moved]);
      perChange.push(statSync(journalPath(file)).size - before);
      // The snapshot was not touched.
      expect(statSync(file).mtimeMs).toBe(snapshot.mtimeMs);
      expect(statSync(file).size).toBe(snapshot.size);
      const read = syncedTopology(file);
      expect(read.version).toBe(2);
      expect(read.instances).toHaveLength(size);
      expect(read.instances.find((i) => i.id === 'n3')).toMatchObject({ ip: '10.9.9.9' });
    }
    expect(perChange[1]).toBe(perChange[0]);
  });

  it('marks the snapshot as ours, from this database', () => {
    const file = join(tempDir(), 'topology.json');
    writer(file, fleet(3));
    const head = JSON.parse(readFileSync(file, 'utf8')) as { source: string; cluster: string; version: number };
    expect(head).toMatchObject({ source: 'presence-dns sync', cluster: CLUSTER, version: 1 });
  });

  it('compacts the overlay and the journal into a new image and snapshot once enough instances changed', () => {
    const file = join(tempDir(), 'topology.json');
    const threshold = compactionThreshold(0);
    const { state, posted } = writer(file, fleet(threshold));
    for (let k = 0; k < threshold; k++) {
      const i = instanceIn(state, `n${k}.g${k % 7}.default.cf.bosh`);
      state.apply(2 + k, [], [{ ...i, index: 1000 + k }]);
    }
    expect(state.counts.compactions).toBe(1);
    expect(inService(state).pending).toBe(0);
    // The new base image went to the DNS thread with nothing to invalidate (answers did not change).
    expect(posted.at(-1)).toMatchObject({ type: 'image', change: new Uint32Array(0) });
    const snapshot = parseTopology(readFileSync(file, 'utf8'));
    expect(snapshot.ok && snapshot.topology.version).toBe(1 + threshold);
    expect(readFileSync(journalPath(file), 'utf8').trim().split('\n')).toHaveLength(1);
    expect(syncedTopology(file).instances.find((i) => i.id === 'n1')).toMatchObject({ index: 1001 });
    // The snapshot's image is cached beside it, for a fast restart.
    expect(readImageCache(file)).toMatchObject({ kind: 'image', image: { version: 1 + threshold } });
  });

  it('keeps the last good file whole when a write fails, and rewrites it once writing works again, with no change to trigger it', () => {
    const dir = join(tempDir(), 'topology');
    mkdirSync(dir);
    const file = join(dir, 'topology.json');
    const { state, owned } = writer(file, fleet(3));
    // The directory can no longer be written (as root, permissions would not stop us): a file stands in its place.
    const saved = `${dir}.saved`;
    renameSync(dir, saved);
    writeFileSync(dir, '');
    state.replace(compileImage({ version: 2, instances: fleet(5), aliases: new Map(), ptrRecords: null, generatedAt: null, source: null, cluster: null }));
    expect(state.counts.writeFailures).toBe(1);
    expect(owned.writeError).toMatch(/ENOTDIR/);
    rmSync(dir);
    renameSync(saved, dir);
    expect(syncedTopology(file).instances).toHaveLength(3);
    state.retryFailedWrite();
    expect(syncedTopology(file)).toMatchObject({ version: 2, instances: expect.arrayContaining(fleet(5).map((i): unknown => expect.objectContaining({ id: i.id }))) });
    expect(owned.writeError).toBeNull();
    // Nothing failed since: nothing to retry.
    state.retryFailedWrite();
    expect(state.counts.writeFailures).toBe(1);
  });
});

describe('a reader of a synced file', () => {
  it('loads snapshot + journal, then follows appends as deltas', async () => {
    const file = join(tempDir(), 'topology.json');
    const w = writer(file, fleet(20));
    const n5 = instanceIn(w.state, 'n5.g5.default.cf.bosh');
    w.state.apply(2, [instanceName(n5)], []);
    const r = await reader(file);
    expect(inService(r.state).version).toBe(2);
    expect(ids(inService(r.state).instances())).not.toContain('n5');
    const images = r.posted.filter((m) => m.type === 'image').length;

    w.state.apply(3, [], [{ ...n5, ip: '10.7.7.7' }]);
    await waitFor(() => inService(r.state).version === 3, 20_000, 'the reader to follow the journal');
    expect(inService(r.state).get('n5.g5.default.cf.bosh')).toMatchObject({ ip: '10.7.7.7' });
    // As a delta: no new image for one change.
    expect(r.posted.filter((m) => m.type === 'image')).toHaveLength(images);
    expect(r.posted.at(-1)?.type === 'delta' || r.posted.at(-1)?.type === 'status').toBe(true);
  });

  it('reads the new snapshot after a compaction resets the journal', async () => {
    const file = join(tempDir(), 'topology.json');
    const w = writer(file, fleet(30));
    const r = await reader(file);
    const threshold = compactionThreshold(30);
    for (let k = 0; k < threshold + 3; k++) w.state.apply(2 + k, [], [{ ...instanceIn(w.state, 'n2.g2.default.cf.bosh'), index: 500 + k }]);
    await waitFor(() => inService(r.state).version === inService(w.state).version, 20_000, 'the reader to catch up');
    expect(inService(r.state).get('n2.g2.default.cf.bosh')).toMatchObject({ index: 500 + threshold + 2 });
    expect(ids(inService(r.state).instances())).toEqual(ids(inService(w.state).instances()));
  });

  it('stops at a torn last line and picks the change up once the line is complete', async () => {
    const file = join(tempDir(), 'topology.json');
    const w = writer(file, fleet(5));
    w.owned.close();
    const line = journalLine(1, { version: 2, removes: ['n1.g1.default.cf.bosh'], adds: [] }).trimEnd();
    appendFileSync(journalPath(file), line.slice(0, 10));
    const r = await reader(file);
    expect(inService(r.state).version).toBe(1);
    expect(ids(inService(r.state).instances())).toContain('n1');
    appendFileSync(journalPath(file), `${line.slice(10)}\n`);
    await waitFor(() => inService(r.state).version === 2, 20_000, 'the completed line');
    expect(ids(inService(r.state).instances())).not.toContain('n1');
  });
});

describe('a reader of a journal that turns bad', () => {
  it('stops at a corrupt line, keeps every change before it, reports it, and follows again after the next snapshot', async () => {
    const file = join(tempDir(), 'topology.json');
    const w = writer(file, fleet(20));
    const n5 = instanceIn(w.state, 'n5.g5.default.cf.bosh');
    const r = await reader(file);
    w.state.apply(2, [], [{ ...n5, ip: '10.7.7.7' }]);
    await waitFor(() => inService(r.state).version === 2, 20_000, 'the reader to follow the journal');
    // Lines that parse as JSON but are not changes, then a good change after them.
    for (const line of ['null', '[]', '"x"', '42', '{"n":2,"v":"3","rm":[],"add":[]}']) appendFileSync(journalPath(file), `${line}\n`);
    w.state.apply(3, [instanceName(n5)], []);
    await waitFor(() => r.source.journalError !== null, 20_000, 'the bad line to be reported');
    expect(r.source.journalError).toMatch(/journal line 2 \(byte \d+\) is corrupt: it has no checksum/);
    expect(r.source.counts.journalErrors).toBe(1);
    // What was applied stays; nothing after the bad line is applied.
    expect(inService(r.state).version).toBe(2);
    expect(inService(r.state).get('n5.g5.default.cf.bosh')).toMatchObject({ ip: '10.7.7.7' });
    expect(inService(r.state).recordCount).toBe(20);
    // The writer compacts (a new snapshot and journal): the reader follows again.
    w.owned.snapshot(inService(w.state));
    await waitFor(() => inService(r.state).version === 3, 20_000, 'the reader to read the new snapshot');
    expect(inService(r.state).get('n5.g5.default.cf.bosh')).toBeUndefined();
    expect(r.source.journalError).toBeNull();
  });

  it('reads a new journal beside the same snapshot without taking back what it applied', async () => {
    const file = join(tempDir(), 'topology.json');
    const w = writer(file, fleet(10));
    const n1 = instanceIn(w.state, 'n1.g1.default.cf.bosh');
    w.state.apply(2, [], [{ ...n1, ip: '10.8.8.8' }]);
    w.owned.close();
    const r = await reader(file);
    expect(inService(r.state).version).toBe(2);
    // Someone writes a journal for the same snapshot whose first line is already bad.
    writeFileSync(journalPath(file), `${readFileSync(journalPath(file), 'utf8').split('\n')[0]}\nnull\n`);
    await waitFor(() => r.source.journalError !== null, 20_000, 'the bad journal to be reported');
    expect(inService(r.state).version).toBe(2);
    expect(inService(r.state).get('n1.g1.default.cf.bosh')).toMatchObject({ ip: '10.8.8.8' });
  });

  it('serves the snapshot and journal together, in one step', async () => {
    const file = join(tempDir(), 'topology.json');
    const w = writer(file, fleet(10));
    w.state.apply(2, ['n1.g1.default.cf.bosh'], []);
    w.owned.close();
    const r = await reader(file);
    // One image message carries the journal's change: the DNS thread never answers from the snapshot alone.
    const views = r.posted.filter((m) => m.type === 'image' || m.type === 'delta');
    expect(views).toHaveLength(1);
    expect(views[0]).toMatchObject({ type: 'image', deltas: [{ version: 2, removes: ['n1.g1.default.cf.bosh'] }] });
  });
});

describe('aliases before any topology', () => {
  it('are served with the first topology a syncing node puts in service, though no file was there to read', async () => {
    const dir = tempDir();
    const file = join(dir, 'topology.json');
    mkdirSync(join(dir, 'aliases.d'));
    writeFileSync(join(dir, 'aliases.d', 'web.yaml'), 'web.service.internal: ["*.g0.default.cf.bosh"]\n');
    const state = new TopologyState({ domains: [], post: unposted, logger: silentLogger });
    const source = new FileSource({ file, aliasesDir: join(dir, 'aliases.d'), state, logger: silentLogger, debounceMs: 10 });
    sources.push(source);
    await source.start();
    expect(state.current).toBeNull();
    // The syncer's first snapshot.
    state.replace(compileImage({ version: 1, instances: fleet(3), aliases: new Map(), ptrRecords: null, generatedAt: null, source: null, cluster: null }));
    expect(inService(state).aliasTargets('web.service.internal')).toEqual(['*.g0.default.cf.bosh']);
  });
});

describe('limits on what is read', () => {
  it('rejects a topology file over the size limit, keeping the last good topology', async () => {
    const file = join(tempDir(), 'topology.json');
    writeFileSync(file, topologyJson([{ id: 'a', ip: '10.0.0.1' }]));
    const state = new TopologyState({ domains: [], post: unposted, logger: silentLogger });
    const source = new FileSource({ file, aliasesDir: join(file, '..', 'aliases.d'), state, logger: silentLogger, debounceMs: 10, maxFileBytes: 4096 });
    sources.push(source);
    await source.start();
    expect(inService(state).recordCount).toBe(1);
    writeFileSync(file, topologyJson(Array.from({ length: 100 }, (_, k) => ({ id: `b${k}`, ip: `10.0.1.${k}` }))));
    await waitFor(() => source.lastError !== null, 20_000, 'the big file to be rejected');
    expect(source.lastError).toMatch(/topology\.json is \d+ bytes, over topology\.max_file_bytes \(4096\)/);
    expect(inService(state).recordCount).toBe(1);
  });
});

describe('a restarted worker', () => {
  it('goes on from the view in service and does not read an unchanged file again', async () => {
    const file = join(tempDir(), 'topology.json');
    const w = writer(file, fleet(10));
    w.state.apply(2, ['n1.g1.default.cf.bosh'], []);
    w.owned.close();
    const first = await reader(file);
    // The journal then turns bad after the change: a fresh read would still reach version 2.
    appendFileSync(journalPath(file), 'null\n');
    await waitFor(() => first.source.journalError !== null, 20_000, 'the bad line');
    const position = first.source.position();
    // The DNS thread's view: the image it was sent, with its deltas.
    const image = required(first.posted.find((m) => m.type === 'image'), 'an image posted to the DNS thread');
    const posted: ToMain[] = [];
    const state = new TopologyState({ domains: [], post: (m) => posted.push(m), logger: silentLogger });
    state.resume({ buffer: image.buffer, bufferId: image.bufferId, seq: image.seq, aliases: image.aliases, deltas: image.deltas });
    const again = new FileSource({ file, aliasesDir: join(file, '..', 'aliases.d'), state, logger: silentLogger, debounceMs: 10 });
    sources.push(again);
    await again.start(position);
    expect(inService(state).version).toBe(2);
    expect(ids(inService(state).instances())).not.toContain('n1');
    // Nothing was sent to the DNS thread: its view stays as it is.
    expect(posted.filter((m) => m.type === 'image' || m.type === 'delta')).toEqual([]);
  });
});

describe('the cached image', () => {
  it('is served only once verified: flipped or cut bytes are caught, the snapshot is read instead, and the cache rewritten', async () => {
    const file = join(tempDir(), 'topology.json');
    const w = writer(file, fleet(50));
    w.owned.close();
    const cache = `${file}.image`;
    const good = readFileSync(cache);
    const damaged: Array<[string, Buffer]> = [
      ['a flipped byte in the image', Buffer.from(good.map((b, k) => (k === good.length >> 1 ? b ^ 0x10 : b)))],
      ['a flipped byte in the header', Buffer.from(good.map((b, k) => (k === 20 ? b ^ 1 : b)))],
      ['cut short', good.subarray(0, good.length - 100)],
      ['every 7th byte from a quarter in flipped', Buffer.from(good.map((b, k) => (k >= good.length >> 2 && k % 7 === 0 ? b ^ 0xff : b)))],
    ];
    for (const [what, bytes] of damaged) {
      writeFileSync(cache, bytes);
      expect(readImageCache(file), what).toMatchObject({ kind: 'corrupt' });
      const r = await reader(file);
      expect(r.source.cacheError, what).toMatch(/cached image .*topology\.json\.image rejected/);
      expect(r.source.counts.cacheRejects).toBe(1);
      expect(inService(r.state).recordCount).toBe(50);
      expect(ids(inService(r.state).instances())).toEqual(ids(fleet(50)));
    }
    // A syncing node rewrites the cache of its own snapshot.
    const state = new TopologyState({ domains: [], post: unposted, logger: silentLogger });
    const source = new FileSource({ file, aliasesDir: join(file, '..', 'aliases.d'), state, logger: silentLogger, rewritesCache: true });
    sources.push(source);
    await source.start();
    expect(readImageCache(file)).toMatchObject({ kind: 'image', image: { version: 1 } });
  });

  it('is trusted only for the snapshot it was built from', () => {
    const file = join(tempDir(), 'topology.json');
    const { state } = writer(file, fleet(40));
    for (let k = 0; k < compactionThreshold(40); k++) state.apply(2 + k, [], [{ ...instanceIn(state, 'n0.g0.default.cf.bosh'), index: k }]);
    expect(readImageCache(file).kind).toBe('image');
    // Someone replaces the snapshot (same version, other content): the cache no longer fits.
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace('"n1"', '"n1-other"'));
    expect(readImageCache(file).kind).toBe('none');
  });
});

describe('image buffers', () => {
  it('are reused once released, so replacing a topology again and again does not pile up memory', () => {
    const posted: ToMain[] = [];
    const state = new TopologyState({ domains: [], post: (m) => posted.push(m), logger: silentLogger });
    const images = () => posted.filter((m): m is Extract<ToMain, { type: 'image' }> => m.type === 'image');
    const load = (version: number) => {
      const topology = { version, instances: fleet(200), aliases: new Map(), ptrRecords: null, generatedAt: null, source: null, cluster: null };
      const builder = new ImageBuilder(200);
      for (const i of topology.instances) builder.add(i);
      state.replace(builder.finish({ version, ptrRecords: null }, state.allocate));
    };
    load(1);
    load(2);
    const [first, second] = images();
    // The DNS thread moved on from the first image: it comes back, and the next image is built into it.
    state.release(first.bufferId);
    load(3);
    expect(images()[2].buffer).toBe(first.buffer);
    // The image in service is never reused, even if a stale release names it.
    state.release(images()[2].bufferId);
    load(4);
    expect(images()[3].buffer).not.toBe(first.buffer);
    expect(images()[3].buffer).not.toBe(second.buffer);
    expect(inService(state).version).toBe(4);
    expect(inService(state).recordCount).toBe(200);
  });
});
