// The topology snapshot as the syncer writes it: a JSON document in BOSH's columnar
// records.json shape with our extra columns and an ownership mark, produced in chunks so
// even 600 k records never become one giant string (state.ts writes it atomically). The
// changes after it go to the journal (journal.ts), and its compiled image to the image
// cache (image-cache.ts). Runs on the control plane (the topology worker).
import { eachByKind, RECORD_KEYS, type ByKind } from '../image/fields.ts';
import type { Instance } from '../image/instance.ts';

/** The `source` our syncer writes: a file without it (or with another) is not ours to replace. */
export const SYNC_SOURCE = 'presence-dns sync';

export interface SnapshotMeta {
  /** The revision the records reflect; read back as the topology's version. */
  version: number;
  /** The id of the presence database the records came from (`presence_cluster`). */
  cluster: string;
}

const asIs = <T>(value: T) => value;

/** A value as a `record_infos` cell, by kind. BOSH writes numeric ids as strings; we do too so its tooling reads our files. */
const CELL: ByKind<unknown> = {
  label: asIs, optionalLabel: asIs, domain: asIs, int: asIs, ip: asIs, text: asIs, health: asIs, ports: asIs,
  numericId: (n) => (n === null ? null : String(n)),
  idList: (ids) => ids.map(String),
};

/** One record as a `record_infos` row in RECORD_KEYS order. */
export function recordRow(i: Instance): unknown[] {
  return eachByKind(i, CELL);
}

/** The snapshot's text in chunks; `version` first, so a reader can check it without a full parse. */
export function* snapshotChunks(meta: SnapshotMeta, records: Iterable<Instance>, generatedAt = new Date()): Generator<string> {
  yield `{"version":${meta.version},"source":${JSON.stringify(SYNC_SOURCE)},"cluster":${JSON.stringify(meta.cluster)},`
    + `"generated_at":${JSON.stringify(generatedAt.toISOString())},"record_keys":${JSON.stringify(RECORD_KEYS)},"record_infos":[`;
  let batch: string[] = [];
  let first = true;
  for (const r of records) {
    batch.push(JSON.stringify(recordRow(r)));
    if (batch.length === 2000) {
      yield (first ? '' : ',') + batch.join(',');
      first = false;
      batch = [];
    }
  }
  if (batch.length) yield (first ? '' : ',') + batch.join(',');
  yield ']}';
}
