// An instance's fields, declared once. Each field says what it is called in the
// topology file (BOSH's records.json columns, plus ours), in the presences table and in a
// registration entry, what kind of value it holds, and where the image stores it. The
// file reader and the snapshot writer, the image builder and reader, `sameInstance`, the
// registration validation and the database row mapping loop over this table; each of
// them handles every kind and every image slot in an object the compiler checks
// (`ByKind`, `BySlot`, `ReadByKind`, `ReadBySlot`), and the table itself is a mapped type over `Instance`, so a
// field added to `Instance` but not here, or a kind some reader does not handle, fails
// to compile. test/image/fields.test.ts round-trips an instance differing in each field
// through every one of them. How to add a field: CONTRIBUTING.md.
import type { Health, Instance } from './instance.ts';

/**
 * What a field's value is; it decides how each format reads, writes and compares it.
 * `numericId` and `int` hold the same values, but files write numeric ids as digit
 * strings (as BOSH does) and an index as a number.
 */
export interface KindValues {
  /** A DNS label every instance has. */
  label: string;
  optionalLabel: string | null;
  /** A dotted zone name (the served domain). */
  domain: string;
  numericId: number | null;
  int: number | null;
  idList: number[];
  /** Canonical address text (util/ip.ts parseIp). */
  ip: string;
  /** Free text (no control characters). */
  text: string | null;
  health: Health | null;
  ports: Record<string, number>;
}
export type FieldKind = keyof KindValues;

/** The group sections of the image: an instance's group is the (domain, group, network, deployment) it names. */
export type GroupPart = 'groupDomain' | 'groupName' | 'groupNetwork' | 'groupDeployment';

/** Where and how the image stores a field (layout.ts names the sections). */
export interface SlotValues {
  /** Stored once per group (builder.ts `groupOf`). */
  group: string;
  /** A string table id in a per-instance section; `recurs` decides whether the text is interned. */
  string: string;
  /** The same, 0 (the empty string) standing for null. */
  optionalString: string | null;
  /** An Int32 section, -1 standing for null. */
  int: number | null;
  /** A Uint8 section of indexes into layout.ts HEALTH_CODES (0: null). */
  health: Health | null;
  /** instIp (16 bytes) and instFamily. */
  ip: string;
  /** gidOffsets and gids, repeats dropped. */
  idList: number[];
  /** portOffsets, portNames (interned) and portNumbers. */
  ports: Record<string, number>;
}
export type SlotKind = keyof SlotValues;

export type IntSection = 'instIndex' | 'instNumId' | 'instAzId' | 'instNetworkId';
export type StringSection = 'instId' | 'instAz' | 'instAgent' | 'instCell';

export type ImageSlot =
  | { kind: 'group'; part: GroupPart }
  | { kind: 'string'; section: StringSection }
  | { kind: 'optionalString'; section: StringSection }
  | { kind: 'int'; section: IntSection }
  | { kind: 'health' }
  | { kind: 'ip' }
  | { kind: 'idList' }
  | { kind: 'ports' };

/** The presences column types (src/presence/schema.ts). */
export type SqlType = 'text' | 'int' | 'int[]' | 'jsonb';

/** The tags of a union whose value type is exactly V. */
type Exactly<Values, V> = { [T in keyof Values]: [V] extends [Values[T]] ? ([Values[T]] extends [V] ? T : never) : never }[keyof Values];

interface StoredSpec<V> {
  /** Its column in the topology file. */
  column: string;
  /** Another name the file reader accepts for the column (our own spelling where BOSH's differs). */
  columnAlias?: string;
  /** Its column in the presences table (src/presence/schema.ts) and that column's type. */
  db: { column: string; type: SqlType };
  /** Its key in a registration entry (docs/registrations.md); null when the registrar sets it. */
  entry: string | null;
  kind: Exactly<KindValues, V>;
  /** Its values recur across instances (groups, zones, cells): checked once per value, stored once. */
  recurs: boolean;
  /** Text DNS looks up without regard to case: the topology file reader lower-cases it. */
  lowerCase?: true;
  image: Extract<ImageSlot, { kind: Exactly<SlotValues, V> }>;
}

/** The fields that follow from the others: in no file, row or entry, and not compared. */
type DerivedKey = 'family';
export type StoredKey = Exclude<keyof Instance, DerivedKey>;
export type StoredInstance = Pick<Instance, StoredKey>;

/** An address's family, from its canonical text. */
export function familyOf(ip: string): 4 | 6 {
  return ip.includes(':') ? 6 : 4;
}

/**
 * Every field of an instance, in the topology file's column order (BOSH's columns first,
 * ours after; a new column goes at the end).
 */
const SPECS: { readonly [K in StoredKey]: StoredSpec<Instance[K]> } = {
  id: { column: 'id', db: { column: 'id', type: 'text' }, entry: 'id', kind: 'label', recurs: false, image: { kind: 'string', section: 'instId' } },
  numId: { column: 'num_id', db: { column: 'num_id', type: 'int' }, entry: 'num_id', kind: 'numericId', recurs: false, image: { kind: 'int', section: 'instNumId' } },
  group: {
    column: 'instance_group', columnAlias: 'group', db: { column: 'group_name', type: 'text' }, entry: 'group', kind: 'label', recurs: true,
    image: { kind: 'group', part: 'groupName' },
  },
  groupIds: { column: 'group_ids', db: { column: 'group_ids', type: 'int[]' }, entry: 'group_ids', kind: 'idList', recurs: false, image: { kind: 'idList' } },
  az: { column: 'az', db: { column: 'az', type: 'text' }, entry: 'az', kind: 'optionalLabel', recurs: true, image: { kind: 'optionalString', section: 'instAz' } },
  azId: { column: 'az_id', db: { column: 'az_id', type: 'int' }, entry: 'az_id', kind: 'numericId', recurs: false, image: { kind: 'int', section: 'instAzId' } },
  network: { column: 'network', db: { column: 'network', type: 'text' }, entry: 'network', kind: 'label', recurs: true, image: { kind: 'group', part: 'groupNetwork' } },
  networkId: {
    column: 'network_id', db: { column: 'network_id', type: 'int' }, entry: 'network_id', kind: 'numericId', recurs: false,
    image: { kind: 'int', section: 'instNetworkId' },
  },
  deployment: {
    column: 'deployment', db: { column: 'deployment', type: 'text' }, entry: 'deployment', kind: 'label', recurs: true,
    image: { kind: 'group', part: 'groupDeployment' },
  },
  ip: { column: 'ip', db: { column: 'ip', type: 'text' }, entry: 'ip', kind: 'ip', recurs: false, image: { kind: 'ip' } },
  domain: { column: 'domain', db: { column: 'domain', type: 'text' }, entry: 'domain', kind: 'domain', recurs: true, image: { kind: 'group', part: 'groupDomain' } },
  agentId: { column: 'agent_id', db: { column: 'agent_id', type: 'text' }, entry: 'agent_id', kind: 'text', recurs: false, lowerCase: true, image: { kind: 'optionalString', section: 'instAgent' } },
  index: {
    column: 'instance_index', columnAlias: 'index', db: { column: 'instance_index', type: 'int' }, entry: 'index', kind: 'int', recurs: false,
    image: { kind: 'int', section: 'instIndex' },
  },
  health: { column: 'health', db: { column: 'health', type: 'text' }, entry: 'health', kind: 'health', recurs: false, image: { kind: 'health' } },
  cellId: { column: 'cell_id', db: { column: 'cell_id', type: 'text' }, entry: null, kind: 'text', recurs: true, image: { kind: 'optionalString', section: 'instCell' } },
  ports: { column: 'ports', db: { column: 'ports', type: 'jsonb' }, entry: 'ports', kind: 'ports', recurs: false, image: { kind: 'ports' } },
};

const DERIVED: { readonly [K in DerivedKey]: (i: StoredInstance) => Instance[K] } = {
  family: (i) => familyOf(i.ip),
};

const DERIVED_KEYS = Object.keys(DERIVED) as DerivedKey[];

/** A field the formats carry, with its key. */
export type StoredField = { [K in StoredKey]: { key: K } & StoredSpec<Instance[K]> }[StoredKey];

/** The stored fields, in column order. */
export const STORED_FIELDS: readonly StoredField[] = (Object.keys(SPECS) as StoredKey[]).map((key) => ({ key, ...SPECS[key] }) as StoredField);

/** The columns of the syncer's files, in order (BOSH's names, plus ours). */
export const RECORD_KEYS: readonly string[] = STORED_FIELDS.map((f) => f.column);

/** A stored field whose image slot is of kind T. */
export type SlotField<T extends SlotKind> = StoredField & { image: Extract<ImageSlot, { kind: T }> };

/** One handler per kind: `value` is the field's value, typed by its kind. */
export type ByKind<Out, Extra = undefined> = { [T in FieldKind]: (value: KindValues[T], field: StoredField, extra: Extra) => Out };
/** One handler per image slot. */
export type BySlot<Out, Extra = undefined> = { [T in SlotKind]: (value: SlotValues[T], field: SlotField<T>, extra: Extra) => Out };
/** One reader per kind: the field's value, from `source`. */
export type ReadByKind<Source> = { [T in FieldKind]: (field: StoredField, source: Source) => KindValues[T] };
/** One reader per image slot. */
export type ReadBySlot<Source> = { [T in SlotKind]: (field: SlotField<T>, source: Source) => SlotValues[T] };

type Handler = (value: unknown, field: StoredField, extra: unknown) => unknown;

/**
 * `handlers[kind of field]` of each stored field's value of `i`, in column order. The
 * table ties each field's kind to its type, so the handler gets the value it expects.
 */
export function eachByKind<Out, Extra = undefined>(i: Instance, handlers: ByKind<Out, Extra>, extra?: Extra): Out[] {
  const out: Out[] = [];
  for (const f of STORED_FIELDS) out.push((handlers[f.kind] as Handler)(i[f.key], f, extra) as Out);
  return out;
}

/** Calls `handlers[slot of field]` with each stored field's value of `i`. */
export function eachBySlot<Extra>(i: Instance, handlers: BySlot<void, Extra>, extra: Extra): void {
  for (const f of STORED_FIELDS) (handlers[f.image.kind] as Handler)(i[f.key], f, extra);
}

function assemble<Source>(tagOf: (f: StoredField) => string, read: Record<string, (field: StoredField, source: Source) => unknown>, source: Source): Instance {
  const out = {} as Record<keyof Instance, unknown>;
  for (const f of STORED_FIELDS) out[f.key] = read[tagOf(f)](f, source);
  return addDerived(out);
}

function addDerived(out: Record<keyof Instance, unknown>): Instance {
  const stored = out as StoredInstance;
  for (const key of DERIVED_KEYS) out[key] = DERIVED[key](stored);
  return out as Instance;
}

/** An instance whose stored fields `read` gives by kind (the derived ones follow from them). */
export function instanceByKind<Source>(read: ReadByKind<Source>, source: Source): Instance {
  return assemble((f) => f.kind, read, source);
}

/** An instance whose stored fields `read` gives by image slot. */
export function instanceBySlot<Source>(read: ReadBySlot<Source>, source: Source): Instance {
  return assemble((f) => f.image.kind, read as Record<SlotKind, (field: StoredField, source: Source) => unknown>, source);
}

/** The instance of `stored` (the derived fields computed; extra properties of `stored` are left out). */
export function withDerived(stored: StoredInstance): Instance {
  const out = {} as Record<keyof Instance, unknown>;
  for (const f of STORED_FIELDS) out[f.key] = stored[f.key];
  return addDerived(out);
}

const sameValue = (a: unknown, b: unknown) => a === b;

/** How two values of each kind are told equal. */
const SAME: { [T in FieldKind]: (a: KindValues[T], b: KindValues[T]) => boolean } = {
  label: sameValue, optionalLabel: sameValue, domain: sameValue, numericId: sameValue, int: sameValue, ip: sameValue, text: sameValue, health: sameValue,
  idList: (a, b) => a.length === b.length && a.every((n, k) => n === b[k]),
  // In insertion order: the order SRV answers list the ports in.
  ports: (a, b) => JSON.stringify(a) === JSON.stringify(b),
};

/** Two versions of an instance say the same to DNS: every stored field is equal (the derived ones follow). */
export function sameInstance(a: Instance, b: Instance): boolean {
  for (const f of STORED_FIELDS) if (!(SAME[f.kind] as (x: unknown, y: unknown) => boolean)(a[f.key], b[f.key])) return false;
  return true;
}
