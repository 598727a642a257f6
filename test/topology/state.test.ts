// The topology state of the worker and the file it owns, on real files: a change costs a
// journal line (not a rewrite of the snapshot), a reader elsewhere follows the journal as
// deltas, the journal is compacted into a new snapshot once it has grown, a restart reads
// snapshot + journal (or the cached image of the snapshot), and a torn append is ignored.
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileSource } from '../../src/topology/file-source.ts';
import { compileImage, ImageBuilder } from '../../src/topology/image-builder.ts';
import { readImageCache } from '../../src/topology/image-cache.ts';
import type { ToMain } from '../../src/topology/protocol.ts';
import { parseTopology } from '../../src/topology/reader.ts';
import { compactionThreshold, OwnedFile, TopologyState } from '../../src/topology/state.ts';
import type { Instance } from '../../src/topology/types.ts';
import { instanceName } from '../../src/topology/view.ts';
import { journalPath } from '../../src/topology/writer.ts';
import { tempDir, waitFor } from '../helpers/daemon.ts';
import { syncedTopology, topologyJson, type TestInstance } from '../helpers/topology.ts';
import { silentLogger } from '../presence/fixtures.ts';

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
  state.own(new OwnedFile(file, CLUSTER, silentLogger, state.counts));
  state.replace(compileImage({ version: 1, instances: initial, aliases: new Map(), ptrRecords: null, generatedAt: null, source: null, cluster: null }));
  return { state, posted };
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

describe('the file the syncer owns', () => {
  it('writes a snapshot once, then one journal line per change: bytes per change do not grow with the topology', () => {
    const perChange: number[] = [];
    for (const size of [100, 5000]) {
      const file = join(tempDir(), 'topology.json');
      const { state } = writer(file, fleet(size));
      const snapshot = statSync(file);
      const before = statSync(journalPath(file)).size;
      const moved = { ...state.current!.get(`n3.g3.default.cf.bosh`)!, ip: '10.9.9.9' };
      state.apply(2, [], [moved]);
      perChange.push(statSync(journalPath(file)).size - before);
      // The snapshot was not touched.
      expect(statSync(file).mtimeMs).toBe(snapshot.mtimeMs);
      expect(statSync(file).size).toBe(snapshot.size);
      const read = syncedTopology(file);
      expect(read.version).toBe(2);
      expect(read.instances).toHaveLength(size);
      expect(read.instances.find((i) => i.id === 'n3')!.ip).toBe('10.9.9.9');
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
      const i = state.current!.get(`n${k}.g${k % 7}.default.cf.bosh`)!;
      state.apply(2 + k, [], [{ ...i, index: 1000 + k }]);
    }
    expect(state.counts.compactions).toBe(1);
    expect(state.current!.pending).toBe(0);
    // The new base image went to the DNS thread with nothing to invalidate (answers did not change).
    expect(posted.at(-1)).toMatchObject({ type: 'image', change: new Uint32Array(0) });
    const snapshot = parseTopology(readFileSync(file, 'utf8'));
    expect(snapshot.ok && snapshot.topology.version).toBe(1 + threshold);
    expect(readFileSync(journalPath(file), 'utf8').trim().split('\n')).toHaveLength(1);
    expect(syncedTopology(file).instances.find((i) => i.id === 'n1')!.index).toBe(1001);
    // The snapshot's image is cached beside it, for a fast restart.
    expect(readImageCache(file)?.image.version).toBe(1 + threshold);
  });

  it('keeps the last good file whole when a write fails, and rewrites it once writing works again, with no change to trigger it', () => {
    const dir = join(tempDir(), 'topology');
    mkdirSync(dir);
    const file = join(dir, 'topology.json');
    const { state } = writer(file, fleet(3));
    // The directory can no longer be written (as root, permissions would not stop us): a file stands in its place.
    const saved = `${dir}.saved`;
    renameSync(dir, saved);
    writeFileSync(dir, '');
    state.replace(compileImage({ version: 2, instances: fleet(5), aliases: new Map(), ptrRecords: null, generatedAt: null, source: null, cluster: null }));
    expect(state.counts.writeFailures).toBe(1);
    expect(state.owned!.writeError).toMatch(/ENOTDIR/);
    rmSync(dir);
    renameSync(saved, dir);
    expect(syncedTopology(file).instances).toHaveLength(3);
    state.retryFailedWrite();
    expect(syncedTopology(file)).toMatchObject({ version: 2, instances: expect.arrayContaining(fleet(5).map((i) => expect.objectContaining({ id: i.id }))) });
    expect(state.owned!.writeError).toBeNull();
    // Nothing failed since: nothing to retry.
    state.retryFailedWrite();
    expect(state.counts.writeFailures).toBe(1);
  });
});

describe('a reader of a synced file', () => {
  it('loads snapshot + journal, then follows appends as deltas', async () => {
    const file = join(tempDir(), 'topology.json');
    const w = writer(file, fleet(20));
    const n5 = w.state.current!.get('n5.g5.default.cf.bosh')!;
    w.state.apply(2, [instanceName(n5)], []);
    const r = await reader(file);
    expect(r.state.current!.version).toBe(2);
    expect(ids(r.state.current!.instances())).not.toContain('n5');
    const images = r.posted.filter((m) => m.type === 'image').length;

    w.state.apply(3, [], [{ ...n5, ip: '10.7.7.7' }]);
    await waitFor(() => r.state.current!.version === 3, 5000, 'the reader to follow the journal');
    expect(r.state.current!.get('n5.g5.default.cf.bosh')!.ip).toBe('10.7.7.7');
    // As a delta: no new image for one change.
    expect(r.posted.filter((m) => m.type === 'image')).toHaveLength(images);
    expect(r.posted.at(-1)?.type === 'delta' || r.posted.at(-1)?.type === 'status').toBe(true);
  });

  it('reads the new snapshot after a compaction resets the journal', async () => {
    const file = join(tempDir(), 'topology.json');
    const w = writer(file, fleet(30));
    const r = await reader(file);
    const threshold = compactionThreshold(30);
    for (let k = 0; k < threshold + 3; k++) w.state.apply(2 + k, [], [{ ...w.state.current!.get('n2.g2.default.cf.bosh')!, index: 500 + k }]);
    await waitFor(() => r.state.current!.version === w.state.current!.version, 5000, 'the reader to catch up');
    expect(r.state.current!.get('n2.g2.default.cf.bosh')!.index).toBe(500 + threshold + 2);
    expect(ids(r.state.current!.instances())).toEqual(ids(w.state.current!.instances()));
  });

  it('stops at a torn last line and picks the change up once the line is complete', async () => {
    const file = join(tempDir(), 'topology.json');
    const w = writer(file, fleet(5));
    w.state.owned!.close();
    const line = JSON.stringify({ v: 2, rm: ['n1.g1.default.cf.bosh'], add: [] });
    appendFileSync(journalPath(file), line.slice(0, 10));
    const r = await reader(file);
    expect(r.state.current!.version).toBe(1);
    expect(ids(r.state.current!.instances())).toContain('n1');
    appendFileSync(journalPath(file), `${line.slice(10)}\n`);
    await waitFor(() => r.state.current!.version === 2, 5000, 'the completed line');
    expect(ids(r.state.current!.instances())).not.toContain('n1');
  });
});

describe('the cached image', () => {
  it('is trusted only for the snapshot it was built from', () => {
    const file = join(tempDir(), 'topology.json');
    const { state } = writer(file, fleet(40));
    for (let k = 0; k < compactionThreshold(40); k++) state.apply(2 + k, [], [{ ...state.current!.get('n0.g0.default.cf.bosh')!, index: k }]);
    expect(readImageCache(file)).not.toBeNull();
    // Someone replaces the snapshot (same version, other content): the cache no longer fits.
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace('"n1"', '"n1-other"'));
    expect(readImageCache(file)).toBeNull();
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
    expect(state.current!.version).toBe(4);
    expect(state.current!.recordCount).toBe(200);
  });
});
