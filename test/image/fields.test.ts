// Every field of an instance is carried by every place that handles instances. The cases
// are generated from the field table (src/image/fields.ts): for each field, instances that
// differ from a base instance in that field alone must (a) not be `sameInstance` with it,
// and come back equal from (b) the snapshot writer through the topology file reader,
// (c) the image builder through the image reader, and (d) a registration written to the
// presences table (real PostgreSQL) and read back as the syncer does. A new field gets
// these cases without any edit here, and fails in the place that does not carry it.
import { beforeAll, describe, expect, it } from 'vitest';
import { parseTopology } from '../../src/control/reader.ts';
import { snapshotChunks } from '../../src/control/snapshot.ts';
import { toInstance } from '../../src/control/syncer.ts';
import { compileImage } from '../../src/image/builder.ts';
import { familyOf, STORED_FIELDS, type KindValues, type StoredField } from '../../src/image/fields.ts';
import { TopologyImage } from '../../src/image/image.ts';
import { sameInstance, type Instance } from '../../src/image/instance.ts';
import type { Registration } from '../../src/registrations/types.ts';
import { presenceDatabase, type PresenceDatabase } from '../helpers/postgres.ts';

/** Every field set (no nulls, no empty lists), so a variant can also be null or empty. */
const BASE: Instance = {
  id: 'base-0', numId: 3, group: 'web', groupIds: [4, 9], az: 'z1', azId: 2, network: 'default', networkId: 5, deployment: 'cf',
  ip: '10.0.0.1', family: 4, domain: 'bosh', agentId: 'agent-0', index: 1, health: 'running', cellId: 'cell-0', ports: { http: 8080, admin: 9090 },
};

/** Other values of each kind than BASE has (in canonical form, as readers give them). */
const VARIANTS: { [T in keyof KindValues]: Array<KindValues[T]> } = {
  label: ['other-1'],
  optionalLabel: ['other-2', null],
  domain: ['other.example'],
  numericId: [7, 0, null],
  int: [7, 0, null],
  idList: [[6], [9, 4], []],
  ip: ['10.9.9.9', 'fd00:0000:0000:0000:0000:0000:0000:0002'],
  text: ['other-3', null],
  health: ['failing', 'unchecked', null],
  // The same ports in another order: the order SRV answers list them in.
  ports: [{ http: 8081, admin: 9090 }, { admin: 9090, http: 8080 }, {}],
};

interface Case {
  field: StoredField;
  value: unknown;
  instance: Instance;
}

const CASES: Case[] = STORED_FIELDS.flatMap((field) =>
  (VARIANTS[field.kind] as unknown[]).map((value) => {
    const instance = { ...BASE, [field.key]: value };
    return { field, value, instance: { ...instance, family: familyOf(instance.ip) } };
  }));

const title = (c: Case) => `${c.field.key} = ${JSON.stringify(c.value)}`;

describe('an instance differing in one field', () => {
  it('covers every field of the table', () => {
    expect(new Set(CASES.map((c) => c.field.key)).size).toBe(STORED_FIELDS.length);
  });

  it.each(CASES.map((c) => [title(c), c] as const))('%s: is not the same instance', (_, c) => {
    expect(sameInstance(BASE, c.instance)).toBe(false);
    expect(sameInstance(c.instance, { ...c.instance })).toBe(true);
  });

  it.each(CASES.map((c) => [title(c), c] as const))('%s: survives the snapshot writer and the file reader', (_, c) => {
    const text = [...snapshotChunks({ version: 1, cluster: 'c' }, [c.instance])].join('');
    const read = parseTopology(text);
    if (!read.ok) throw new Error(read.error);
    expect(read.warnings).toEqual([]);
    expect(read.topology.instances).toEqual([c.instance]);
  });

  it.each(CASES.map((c) => [title(c), c] as const))('%s: survives the image builder and the image reader', (_, c) => {
    const image = new TopologyImage(compileImage({
      version: 1, instances: [c.instance], aliases: new Map(), ptrRecords: null, generatedAt: null, source: null, cluster: null,
    }));
    expect(image.instance(0)).toEqual(c.instance);
  });
});

describe('an instance differing in one field, through the presences table', () => {
  let presence: PresenceDatabase;
  beforeAll(async () => {
    presence = await presenceDatabase();
    // Vitest runs what beforeAll returns after the suite: closed only once it was opened.
    return () => presence.close();
  });

  /**
   * What a registration can say: a field the registrar sets (the cell) is never null, a
   * numeric id left null is allocated instead, and health always has a value.
   */
  const registrable = (c: Case) => c.value !== null || (c.field.entry !== null && c.field.kind !== 'numericId' && c.field.kind !== 'health');
  const cases = CASES.filter(registrable);

  it.each(cases.map((c, n) => [title(c), c, n] as const))('%s: survives a registration written and read back', async (_, c, n) => {
    // The fields a registration gives, as the table says.
    const fields = Object.fromEntries(STORED_FIELDS.filter((f) => f.entry !== null).map((f) => [f.key, c.instance[f.key]]));
    const registration = { ...fields, routes: [], app: null, isolationSegment: null, tags: {}, checks: [] } as unknown as Registration;
    // A cell per case, named after the instance's: each case's rows are its own.
    const cell = `${c.instance.cellId}-${n}`;
    await presence.store.writeInstances(cell, [registration]);
    const rows = (await presence.store.snapshot()).rows.filter((r) => r.cellId === cell);
    expect(rows.map(toInstance)).toEqual([{ ...c.instance, cellId: cell }]);
  });
});
