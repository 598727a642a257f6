// Compiles instances into a topology image (image-layout.ts): columns in typed arrays, one
// string table, the groups and their members, and the hash tables every name form is
// looked up in. Runs on the control plane (the topology worker); the result is one
// SharedArrayBuffer that the DNS thread puts in service by swapping a reference.
import { isIP } from 'node:net';
import { ipBytes, parseIp, writeIpBytes, type ParsedIp } from '../util/ip.ts';
import {
  FLAG_HAS_PTR_RECORDS, H, HEADER_WORDS, HEALTH_CODES, IMAGE_FORMAT, IMAGE_MAGIC,
  hashGroup, hashGroupId, hashGroupIndex, hashInit, hashStoredText, imageBytes, ipKeyHash, sectionViews, tableCapacity, type Counts,
} from './layout.ts';
import { eachByKind, eachBySlot, type ByKind, type BySlot, type GroupPart } from './fields.ts';
import type { Instance, Topology } from './instance.ts';

/** A typed array that grows by doubling while instances are added. */
class Column<T extends Uint8Array | Uint16Array | Uint32Array | Int32Array> {
  length = 0;
  constructor(private data: T, private readonly make: (n: number) => T) {}

  push(value: number): void {
    if (this.length === this.data.length) this.reserve(1);
    this.data[this.length++] = value;
  }

  /** Room for `more` values; returns the array to write them at `length` onwards. */
  reserve(more: number): T {
    if (this.length + more > this.data.length) {
      const bigger = this.make(Math.max(16, this.data.length * 2, this.length + more));
      bigger.set(this.data);
      this.data = bigger;
    }
    return this.data;
  }

  get(i: number): number {
    return this.data[i];
  }

  view(): T {
    return this.data.subarray(0, this.length) as T;
  }
}

const u8 = (n: number) => new Column(new Uint8Array(n), (m) => new Uint8Array(m));
const u16 = (n: number) => new Column(new Uint16Array(n), (m) => new Uint16Array(m));
const u32 = (n: number) => new Column(new Uint32Array(n), (m) => new Uint32Array(m));
const i32 = (n: number) => new Column(new Int32Array(n), (m) => new Int32Array(m));

const NULL_INT = -1;

function oneBytePerCharacter(text: string): boolean {
  for (let k = 0; k < text.length; k++) if (text.charCodeAt(k) > 0xff) return false;
  return true;
}

const V6_CANONICAL = /^[0-9a-f]{4}(:[0-9a-f]{4}){7}$/;

/** An address as stored: used as is when it is canonical for its family (as the reader and syncer give it), else parsed. */
function canonicalIp(ip: string): ParsedIp | null {
  const family = isIP(ip);
  if (family === 4 || (family === 6 && V6_CANONICAL.test(ip))) return { family, canonical: ip };
  return parseIp(ip);
}

const latin1 = (text: string | null) => (text === null || oneBytePerCharacter(text) ? null : `"${text}" has characters outside Latin-1, which a DNS name cannot carry`);
const noText = () => null;

/** Why a field's value cannot be stored (text the wire cannot carry), by kind; null when it can. */
const UNSTORABLE: ByKind<string | null> = {
  label: latin1, optionalLabel: latin1, domain: latin1, text: latin1,
  numericId: noText, int: noText, idList: noText, ip: noText, health: noText,
  ports: (ports) => {
    for (const name in ports) if (!oneBytePerCharacter(name)) return `port name "${name}" has characters outside Latin-1`;
    return null;
  },
};

export interface ImageMeta {
  version: number;
  /** BOSH's `records` list ([canonical ip, name]); null when the file has none. */
  ptrRecords: ReadonlyArray<readonly [string, string]> | null;
}

export class ImageBuilder {
  private readonly strBytes: Column<Uint8Array>;
  private readonly strOffsets = u32(1024);
  private readonly interned = new Map<string, number>();
  private readonly cols;
  private readonly groupKeys = new Map<string, number>();
  private readonly groups: Record<GroupPart, Column<Uint32Array>> = { groupDomain: u32(64), groupName: u32(64), groupNetwork: u32(64), groupDeployment: u32(64) };
  /** The group parts of the instance being added. */
  private readonly groupKey: Record<GroupPart, string> = { groupDomain: '', groupName: '', groupNetwork: '', groupDeployment: '' };
  private readonly slots: BySlot<void, ParsedIp>;
  private readonly domains = new Set<number>();
  private healthCount = 0;

  /** `expected`: how many instances will be added (a hint that saves regrowing). */
  constructor(expected = 1024) {
    const n = Math.max(16, expected);
    this.strBytes = u8(n * 48);
    this.strOffsets.push(0);
    this.cols = {
      instId: u32(n), instGroup: u32(n), instIndex: i32(n), instNumId: i32(n), instAzId: i32(n), instNetworkId: i32(n),
      instAz: u32(n), instAgent: u32(n), instCell: u32(n), instHealth: u8(n), instFamily: u8(n), instIp: u8(n * 16),
      gidOffsets: u32(n + 1), gids: i32(n), portOffsets: u32(n + 1), portNames: u32(n), portNumbers: u16(n),
    };
    this.cols.gidOffsets.push(0);
    this.cols.portOffsets.push(0);
    this.intern('');
    const c = this.cols;
    const text = (recurs: boolean, value: string) => (recurs ? this.intern(value) : this.append(value));
    this.slots = {
      group: (value, f) => {
        this.groupKey[f.image.part] = value;
      },
      string: (value, f) => c[f.image.section].push(text(f.recurs, value)),
      optionalString: (value, f) => c[f.image.section].push(value === null ? 0 : text(f.recurs, value)),
      int: (value, f) => c[f.image.section].push(value ?? NULL_INT),
      health: (value) => {
        c.instHealth.push(value === null ? 0 : HEALTH_CODES.indexOf(value));
        if (value !== null) this.healthCount++;
      },
      ip: (_, _f, ip) => {
        c.instFamily.push(ip.family);
        writeIpBytes(ip, c.instIp.reserve(16), c.instIp.length);
        c.instIp.length += 16;
      },
      idList: (ids) => {
        const first = c.gids.length;
        for (const gid of ids) {
          let seen = false;
          for (let k = first; k < c.gids.length; k++) if (c.gids.get(k) === gid) seen = true;
          if (!seen) c.gids.push(gid);
        }
        c.gidOffsets.push(c.gids.length);
      },
      ports: (ports) => {
        for (const [name, port] of Object.entries(ports)) {
          c.portNames.push(this.intern(name));
          c.portNumbers.push(port);
        }
        c.portOffsets.push(c.portNames.length);
      },
    };
  }

  get count(): number {
    return this.cols.instId.length;
  }

  /** Adds one instance; returns why it was refused (text the wire cannot carry), else null. */
  add(i: Instance): string | null {
    for (const problem of eachByKind(i, UNSTORABLE)) if (problem !== null) return problem;
    // Instances come canonical from the reader and the syncer; anything else is parsed.
    const ip = canonicalIp(i.ip);
    if (!ip) return `ip "${i.ip}" is not an IP address`;
    eachBySlot(i, this.slots, ip);
    this.cols.instGroup.push(this.groupOf(this.groupKey));
    return null;
  }

  /** Writes the image into a buffer from `allocate` (an image pool's, or a new one), zeroed, of at least the bytes asked. */
  finish(meta: ImageMeta, allocate: (bytes: number) => SharedArrayBuffer = (bytes) => new SharedArrayBuffer(bytes)): SharedArrayBuffer {
    const c = this.cols;
    const n = this.count;
    const groupCount = this.groups.groupName.length;
    const ptr = (meta.ptrRecords ?? []).flatMap(([ipText, name]) => {
      const ip = parseIp(ipText);
      return ip && oneBytePerCharacter(name) ? [{ family: ip.family, bytes: ipBytes(ip), name: this.intern(name) }] : [];
    });
    const domainList = [...this.domains];
    const counts: Counts = {
      instances: n, groups: groupCount, strings: this.strOffsets.length - 1, stringBytes: this.strBytes.length,
      groupIds: c.gids.length, ports: c.portNames.length, ptrRecords: ptr.length, domains: domainList.length,
      capGroup: tableCapacity(groupCount), capId: tableCapacity(n), capIndex: tableCapacity(n), capGid: tableCapacity(c.gids.length),
      capAgent: tableCapacity(n), capIp: tableCapacity(meta.ptrRecords ? 0 : n), capPtr: tableCapacity(ptr.length),
    };
    const total = imageBytes(counts);
    const buffer = allocate(total);
    const header = new Uint32Array(buffer, 0, HEADER_WORDS);
    header[H.magic] = IMAGE_MAGIC;
    header[H.format] = IMAGE_FORMAT;
    for (const [key, value] of Object.entries(counts)) header[H[key as keyof Counts]] = value;
    header[H.flags] = meta.ptrRecords ? FLAG_HAS_PTR_RECORDS : 0;
    header[H.healthCount] = this.healthCount;
    header[H.versionLow] = meta.version % 0x1_0000_0000;
    header[H.versionHigh] = Math.floor(meta.version / 0x1_0000_0000);
    header[H.totalBytes] = total;

    const s = sectionViews(buffer, counts);
    s.strOffsets.set(this.strOffsets.view());
    s.strBytes.set(this.strBytes.view());
    for (const name of Object.keys(c) as Array<keyof typeof c>) s[name].set(c[name].view());
    for (const part of Object.keys(this.groups) as GroupPart[]) s[part].set(this.groups[part].view());
    s.domainList.set(domainList);

    // Members of each group, in ordinal (file) order: a counting sort by group.
    const sizes = new Uint32Array(groupCount + 1);
    for (let o = 0; o < n; o++) sizes[c.instGroup.get(o) + 1]++;
    for (let g = 0; g < groupCount; g++) sizes[g + 1] += sizes[g];
    s.memberOffsets.set(sizes);
    const fill = sizes.slice(0, groupCount);
    for (let o = 0; o < n; o++) s.members[fill[c.instGroup.get(o)]++] = o;

    const text = (id: number) => this.textOf(id);
    // Keys hashed from the stored bytes, as hashText would from the strings (no string per key).
    const stored = (h: number, id: number) => hashStoredText(h, s.strBytes, s.strOffsets[id], s.strOffsets[id + 1]);
    for (let g = 0; g < groupCount; g++) {
      put(s.tGroup, hashGroup(text(s.groupDomain[g]), text(s.groupName[g]), text(s.groupNetwork[g]), text(s.groupDeployment[g])), g);
    }
    const domains = new Map<number, string>();
    for (let o = 0; o < n; o++) {
      put(s.tId, stored(hashInit(), s.instId[o]), o);
      if (s.instIndex[o] !== NULL_INT) put(s.tIndex, hashGroupIndex(s.instGroup[o], s.instIndex[o]), o);
      if (s.instAgent[o] !== 0) put(s.tAgent, stored(hashInit(), s.instAgent[o]), o);
      if (!meta.ptrRecords) put(s.tIp, ipKeyHash(s.instIp, o * 16, s.instFamily[o]), o);
      const domainId = s.groupDomain[s.instGroup[o]];
      let domain = domains.get(domainId);
      if (domain === undefined) domains.set(domainId, (domain = text(domainId)));
      for (let k = s.gidOffsets[o]; k < s.gidOffsets[o + 1]; k++) put(s.tGid, hashGroupId(domain, s.gids[k]), o);
    }
    ptr.forEach((p, r) => {
      s.ptrIp.set(p.bytes, r * 16);
      s.ptrFamily[r] = p.family;
      s.ptrName[r] = p.name;
      put(s.tPtr, ipKeyHash(s.ptrIp, r * 16, p.family), r);
    });
    return buffer;
  }

  private groupOf(parts: Record<GroupPart, string>): number {
    const key = `${parts.groupDomain}\u0000${parts.groupName}\u0000${parts.groupNetwork}\u0000${parts.groupDeployment}`;
    let g = this.groupKeys.get(key);
    if (g === undefined) {
      g = this.groups.groupName.length;
      this.groupKeys.set(key, g);
      for (const part of Object.keys(parts) as GroupPart[]) this.groups[part].push(this.intern(parts[part]));
      this.domains.add(this.groups.groupDomain.get(g));
    }
    return g;
  }

  /** A string that recurs (groups, networks, zones, cells, port names): stored once. */
  private intern(text: string): number {
    let id = this.interned.get(text);
    if (id === undefined) {
      id = this.append(text);
      this.interned.set(text, id);
    }
    return id;
  }

  /** A string stored as is (ids, agent ids: unique per instance, not worth a map entry). */
  private append(text: string): number {
    const bytes = this.strBytes.reserve(text.length);
    const at = this.strBytes.length;
    for (let k = 0; k < text.length; k++) bytes[at + k] = text.charCodeAt(k);
    this.strBytes.length += text.length;
    this.strOffsets.push(this.strBytes.length);
    return this.strOffsets.length - 2;
  }

  private textOf(id: number): string {
    let out = '';
    for (let k = this.strOffsets.get(id); k < this.strOffsets.get(id + 1); k++) out += String.fromCharCode(this.strBytes.get(k));
    return out;
  }
}

/** Linear probing; a key may occur many times (the tables are multimaps). */
function put(table: Uint32Array, hash: number, ordinal: number): void {
  const mask = table.length - 1;
  let slot = hash & mask;
  while (table[slot] !== 0) slot = (slot + 1) & mask;
  table[slot] = ordinal + 1;
}

function unheard(): void {
  // Without a listener, skipped instances are only left out of the image.
}

/** Compiles a whole topology; `skipped` hears of each instance the image cannot hold. */
export function compileImage(topology: Topology, skipped: (instance: Instance, reason: string) => void = unheard): SharedArrayBuffer {
  const builder = new ImageBuilder(topology.instances.length);
  for (const i of topology.instances) {
    const reason = builder.add(i);
    if (reason !== null) skipped(i, reason);
  }
  return builder.finish({ version: topology.version, ptrRecords: topology.ptrRecords });
}
