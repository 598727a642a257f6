// What the publisher puts on NATS and the followers read back: the subjects, the stream,
// the snapshot object, and the messages' shapes. Everything read from NATS is checked
// here before a follower uses it, as strictly as a file on disk: a message that fails is
// rejected whole with the reason, never half applied.
import { HEALTH_VALUES, type Health } from '../image/instance.ts';
import type { PresenceRow } from '../presence/store.ts';

export const WIRE_VERSION = 1;

/** The names on the NATS server, all derived from one prefix (`sync.nats_prefix`). */
export interface FanoutNames {
  /** Change messages, in revision order: core subscribers get them live, the stream keeps them. */
  changes: string;
  /** The publisher's heartbeat with the head it published (core only, not kept). */
  head: string;
  /** The JetStream stream over `changes`, read by sequence to fill gaps. */
  stream: string;
  /** The JetStream object store bucket holding the compacted snapshot. */
  bucket: string;
  /** The snapshot's object name. */
  object: string;
}

export function fanoutNames(prefix: string): FanoutNames {
  const token = prefix.replace(/[^A-Za-z0-9_-]/g, '_');
  return {
    changes: `${prefix}.changes`,
    head: `${prefix}.head`,
    stream: `${token.toUpperCase()}_CHANGES`,
    bucket: `${token}-snapshots`,
    object: 'topology',
  };
}

/**
 * One page of changes. A chain of them is gapless: each starts where the one before
 * ended (`from` = the previous `to`), within one `epoch`. A new epoch starts a new chain
 * (the publisher found rows lost: a restore, a failover to a replica behind) with a
 * snapshot of its own; a follower on another epoch must take that snapshot.
 */
export interface ChangeMessage {
  cluster: string;
  epoch: string;
  from: number;
  to: number;
  /** The row that carried `to` (null when the page is empty: the chain's start). */
  lastId: string | null;
  rows: PresenceRow[];
}

/** The publisher's heartbeat: it is alive, and what it has published. */
export interface HeadMessage {
  cluster: string;
  epoch: string;
  revision: number;
}

/** The first line of the snapshot object; a row per line follows, then the trailer. */
export interface SnapshotHeader {
  cluster: string;
  epoch: string;
}

/** The last line: where the snapshot stands, and how many rows came before it (a cut object is told from a whole one). */
export interface SnapshotTrailer {
  revision: number;
  lastId: string | null;
  rows: number;
}

export class FanoutProtocolError extends Error {
  readonly code = 'FANOUT_MESSAGE_INVALID';
}

const text = new TextEncoder();
const bytes = new TextDecoder('utf-8', { fatal: true });

/** Rows travel without their routes: the route emitter reads its own, and DNS serves none. */
function wireRow(row: PresenceRow): Omit<PresenceRow, 'routes'> {
  const { routes: _routes, ...rest } = row;
  return rest;
}

export function encodeChange(message: ChangeMessage): Uint8Array {
  return text.encode(JSON.stringify({ v: WIRE_VERSION, ...message, rows: message.rows.map(wireRow) }));
}

export function encodeHead(message: HeadMessage): Uint8Array {
  return text.encode(JSON.stringify({ v: WIRE_VERSION, ...message }));
}

export function snapshotHeaderLine(header: SnapshotHeader): string {
  return `${JSON.stringify({ v: WIRE_VERSION, ...header })}\n`;
}

export function snapshotTrailerLine(trailer: SnapshotTrailer): string {
  return `${JSON.stringify({ v: WIRE_VERSION, end: true, ...trailer })}\n`;
}

export function snapshotRowLine(row: PresenceRow): string {
  return `${JSON.stringify(wireRow(row))}\n`;
}

function parseJson(data: Uint8Array | string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(typeof data === 'string' ? data : bytes.decode(data));
  } catch (err) {
    throw new FanoutProtocolError(`${what}: not JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FanoutProtocolError(`${what}: not an object`);
  return value as Record<string, unknown>;
}

const isText = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isIntOrNull = (v: unknown) => v === null || Number.isSafeInteger(v);
const isTextOrNull = (v: unknown) => v === null || isText(v);

function field<T>(object: Record<string, unknown>, key: string, check: (v: unknown) => boolean, what: string): T {
  if (!check(object[key])) throw new FanoutProtocolError(`${what}: "${key}" is missing or of the wrong type`);
  return object[key] as T;
}

function envelope(object: Record<string, unknown>, what: string): { cluster: string; epoch: string } {
  if (object.v !== WIRE_VERSION) throw new FanoutProtocolError(`${what}: wire version ${String(object.v)}, this node reads ${WIRE_VERSION} (upgrade the publisher and the followers together)`);
  return { cluster: field(object, 'cluster', isText, what), epoch: field(object, 'epoch', isText, what) };
}

/** The type of each field of a row on the wire. */
const ROW_FIELDS: Record<keyof Omit<PresenceRow, 'routes'>, (v: unknown) => boolean> = {
  id: isText,
  cellId: isText,
  group: isText,
  groupIds: (v) => Array.isArray(v) && v.every((n) => Number.isSafeInteger(n)),
  network: isText,
  networkId: isIntOrNull,
  deployment: isText,
  az: isTextOrNull,
  azId: isIntOrNull,
  index: isIntOrNull,
  numId: isIntOrNull,
  ip: isText,
  domain: isText,
  agentId: isTextOrNull,
  health: (v) => HEALTH_VALUES.includes(v as Health),
  ports: (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((p) => Number.isSafeInteger(p)),
  revision: isCount,
  deleted: (v) => typeof v === 'boolean',
};

export function parseRow(value: unknown, what: string): PresenceRow {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FanoutProtocolError(`${what}: a row is not an object`);
  const row = value as Record<string, unknown>;
  for (const [key, check] of Object.entries(ROW_FIELDS)) {
    if (!check(row[key])) throw new FanoutProtocolError(`${what}: row ${JSON.stringify(row.id ?? null)}: "${key}" is missing or of the wrong type`);
  }
  return { ...(row as unknown as Omit<PresenceRow, 'routes'>), routes: [] };
}

export function decodeChange(data: Uint8Array): ChangeMessage {
  const what = 'change message';
  const object = parseJson(data, what);
  const { cluster, epoch } = envelope(object, what);
  const from = field<number>(object, 'from', isCount, what);
  const to = field<number>(object, 'to', isCount, what);
  if (to < from) throw new FanoutProtocolError(`${what}: "to" (${to}) is before "from" (${from})`);
  const lastId = field<string | null>(object, 'lastId', isTextOrNull, what);
  const raw = field<unknown[]>(object, 'rows', Array.isArray, what);
  const rows = raw.map((r) => parseRow(r, what));
  let previous = from;
  for (const row of rows) {
    if (row.revision <= previous || row.revision > to) throw new FanoutProtocolError(`${what}: row ${row.id} has revision ${row.revision}, outside (${previous}, ${to}] or out of order`);
    previous = row.revision;
  }
  if (rows.length && rows[rows.length - 1].revision !== to) throw new FanoutProtocolError(`${what}: its last row is not at "to" (${to})`);
  return { cluster, epoch, from, to, lastId, rows };
}

export function decodeHead(data: Uint8Array): HeadMessage {
  const what = 'head message';
  const object = parseJson(data, what);
  return { ...envelope(object, what), revision: field(object, 'revision', isCount, what) };
}

export function parseSnapshotHeader(line: string): SnapshotHeader {
  return envelope(parseJson(line, 'snapshot header'), 'snapshot header');
}

/** A row line, or the trailer (the object's last line). */
export function parseSnapshotLine(line: string, what: string): PresenceRow | SnapshotTrailer {
  const object = parseJson(line, what);
  if (object.end !== true) return parseRow(object, what);
  if (object.v !== WIRE_VERSION) throw new FanoutProtocolError(`${what}: trailer of wire version ${String(object.v)}`);
  return {
    revision: field(object, 'revision', isCount, what),
    lastId: field(object, 'lastId', isTextOrNull, what),
    rows: field(object, 'rows', isCount, what),
  };
}
