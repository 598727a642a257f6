// The byte layout of a topology image (docs/architecture.md#the-two-planes): one SharedArrayBuffer holding a
// header of counts, then typed-array sections at offsets that follow from the counts
// alone. The builder and the reader both call `imageLayout`, so the format is defined
// once. Everything is little-endian host order (an image never leaves the machine that
// built it except as a cache file stamped with this format version).

export const IMAGE_MAGIC = 0x50444e49; // "PDNI"
export const IMAGE_FORMAT = 1;

/** Header words (Uint32), in order. */
export const H = {
  magic: 0, format: 1, instances: 2, groups: 3, strings: 4, stringBytes: 5, groupIds: 6, ports: 7,
  ptrRecords: 8, domains: 9, capGroup: 10, capId: 11, capIndex: 12, capGid: 13, capAgent: 14, capIp: 15,
  capPtr: 16, flags: 17, versionLow: 18, versionHigh: 19, totalBytes: 20, healthCount: 21,
} as const;
export const HEADER_WORDS = 24;
export const FLAG_HAS_PTR_RECORDS = 2;

export type Counts = Omit<Record<keyof typeof H, number>, 'magic' | 'format' | 'flags' | 'versionLow' | 'versionHigh' | 'totalBytes' | 'healthCount'>;

type ArrayKind = 'u8' | 'u16' | 'u32' | 'i32';
const WIDTH: Record<ArrayKind, number> = { u8: 1, u16: 2, u32: 4, i32: 4 };

/** Section name → (kind, element count), in storage order. */
function sections(c: Counts): Array<[string, ArrayKind, number]> {
  const n = c.instances;
  return [
    ['strOffsets', 'u32', c.strings + 1],
    ['strBytes', 'u8', c.stringBytes],
    // Instances, one entry each (string ids: 0 is the empty string, meaning null).
    ['instId', 'u32', n],
    ['instGroup', 'u32', n],
    ['instIndex', 'i32', n],
    ['instNumId', 'i32', n],
    ['instAzId', 'i32', n],
    ['instNetworkId', 'i32', n],
    ['instAz', 'u32', n],
    ['instAgent', 'u32', n],
    ['instCell', 'u32', n],
    ['instHealth', 'u8', n],
    ['instFamily', 'u8', n],
    ['instIp', 'u8', n * 16],
    ['gidOffsets', 'u32', n + 1],
    ['gids', 'i32', c.groupIds],
    ['portOffsets', 'u32', n + 1],
    ['portNames', 'u32', c.ports],
    ['portNumbers', 'u16', c.ports],
    // Groups: (domain, group, network, deployment) and their members in ordinal order.
    ['groupDomain', 'u32', c.groups],
    ['groupName', 'u32', c.groups],
    ['groupNetwork', 'u32', c.groups],
    ['groupDeployment', 'u32', c.groups],
    ['memberOffsets', 'u32', c.groups + 1],
    ['members', 'u32', n],
    // BOSH's `records` list: PTR names by address.
    ['ptrIp', 'u8', c.ptrRecords * 16],
    ['ptrFamily', 'u8', c.ptrRecords],
    ['ptrName', 'u32', c.ptrRecords],
    ['domainList', 'u32', c.domains],
    // Open-addressed hash tables of (ordinal + 1); 0 marks an empty slot.
    ['tGroup', 'u32', c.capGroup],
    ['tId', 'u32', c.capId],
    ['tIndex', 'u32', c.capIndex],
    ['tGid', 'u32', c.capGid],
    ['tAgent', 'u32', c.capAgent],
    ['tIp', 'u32', c.capIp],
    ['tPtr', 'u32', c.capPtr],
  ];
}

export interface Sections {
  strOffsets: Uint32Array; strBytes: Uint8Array;
  instId: Uint32Array; instGroup: Uint32Array; instIndex: Int32Array; instNumId: Int32Array; instAzId: Int32Array;
  instNetworkId: Int32Array; instAz: Uint32Array; instAgent: Uint32Array; instCell: Uint32Array;
  instHealth: Uint8Array; instFamily: Uint8Array; instIp: Uint8Array;
  gidOffsets: Uint32Array; gids: Int32Array; portOffsets: Uint32Array; portNames: Uint32Array; portNumbers: Uint16Array;
  groupDomain: Uint32Array; groupName: Uint32Array; groupNetwork: Uint32Array; groupDeployment: Uint32Array;
  memberOffsets: Uint32Array; members: Uint32Array;
  ptrIp: Uint8Array; ptrFamily: Uint8Array; ptrName: Uint32Array; domainList: Uint32Array;
  tGroup: Uint32Array; tId: Uint32Array; tIndex: Uint32Array; tGid: Uint32Array; tAgent: Uint32Array; tIp: Uint32Array; tPtr: Uint32Array;
}

function makeView(kind: ArrayKind, buffer: ArrayBufferLike, offset: number, count: number): ArrayBufferView {
  switch (kind) {
    case 'u8': return new Uint8Array(buffer, offset, count);
    case 'u16': return new Uint16Array(buffer, offset, count);
    case 'u32': return new Uint32Array(buffer, offset, count);
    case 'i32': return new Int32Array(buffer, offset, count);
  }
}

/** Total bytes an image with these counts takes (header included). */
export function imageBytes(c: Counts): number {
  let offset = HEADER_WORDS * 4;
  for (const [, kind, count] of sections(c)) offset = align8(offset) + count * WIDTH[kind];
  return align8(offset);
}

/** Typed-array views of every section of `buffer`, laid out for counts `c`. */
export function sectionViews(buffer: ArrayBufferLike, c: Counts): Sections {
  const views: Record<string, ArrayBufferView> = {};
  let offset = HEADER_WORDS * 4;
  for (const [name, kind, count] of sections(c)) {
    offset = align8(offset);
    views[name] = makeView(kind, buffer, offset, count);
    offset += count * WIDTH[kind];
  }
  return views as unknown as Sections;
}

export function countsOf(header: Uint32Array): Counts {
  return {
    instances: header[H.instances], groups: header[H.groups], strings: header[H.strings], stringBytes: header[H.stringBytes],
    groupIds: header[H.groupIds], ports: header[H.ports], ptrRecords: header[H.ptrRecords], domains: header[H.domains],
    capGroup: header[H.capGroup], capId: header[H.capId], capIndex: header[H.capIndex], capGid: header[H.capGid],
    capAgent: header[H.capAgent], capIp: header[H.capIp], capPtr: header[H.capPtr],
  };
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Slots for `entries` keys at a load factor of at most one half (a power of two, ≥ 2). */
export function tableCapacity(entries: number): number {
  let cap = 2;
  while (cap < entries * 2) cap *= 2;
  return cap;
}

// FNV-1a over the characters of the key's parts, each followed by a 0 separator. Keys are
// Latin-1 text (the builder refuses anything else), so a character is its wire byte.
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export function hashInit(): number {
  return FNV_OFFSET;
}

export function hashText(h: number, text: string): number {
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), FNV_PRIME);
  return Math.imul(h, FNV_PRIME);
}

export function hashNumber(h: number, n: number): number {
  h = Math.imul(h ^ (n & 0xff), FNV_PRIME);
  h = Math.imul(h ^ ((n >>> 8) & 0xff), FNV_PRIME);
  h = Math.imul(h ^ ((n >>> 16) & 0xff), FNV_PRIME);
  return Math.imul(h ^ (n >>> 24), FNV_PRIME);
}

/** hashText of the Latin-1 text stored in `bytes[start, end)`. */
export function hashStoredText(h: number, bytes: Uint8Array, start: number, end: number): number {
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i], FNV_PRIME);
  return Math.imul(h, FNV_PRIME);
}

export function hashBytes(h: number, bytes: Uint8Array, start: number, length: number): number {
  for (let i = start; i < start + length; i++) h = Math.imul(h ^ bytes[i], FNV_PRIME);
  return h;
}

// The keys of the hash tables, shared by the builder (from an instance) and the reader
// (from a query).
export function hashGroup(domain: string, group: string, network: string, deployment: string): number {
  return hashText(hashText(hashText(hashText(hashInit(), group), network), deployment), domain);
}

export function hashGroupIndex(group: number, index: number): number {
  return hashNumber(hashNumber(hashInit(), group), index);
}

export function hashGroupId(domain: string, gid: number): number {
  return hashNumber(hashText(hashInit(), domain), gid);
}

/** An address key: 4 bytes for IPv4, 16 for IPv6, read at `offset` of `bytes`. */
export function ipKeyHash(bytes: Uint8Array, offset: number, family: number): number {
  return hashBytes(hashNumber(hashInit(), family), bytes, offset, family === 4 ? 4 : 16);
}

export const HEALTH_CODES = ['', 'running', 'failing', 'unchecked'] as const;
