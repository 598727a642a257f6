// Reading a topology image (image-layout.ts): the compiled, immutable topology the DNS
// thread answers from. Every lookup is a hash probe or a slice of one group's members;
// nothing here grows with the topology's size except the answer it returns. Instances are
// ordinals into the columns; `instance(o)` materialises one for the resolver.
import { ipBytes, parseIp } from '../util/ip.ts';
import {
  FLAG_HAS_PTR_RECORDS, H, HEADER_WORDS, HEALTH_CODES, IMAGE_FORMAT, IMAGE_MAGIC,
  countsOf, hashGroup, hashGroupId, hashGroupIndex, hashInit, hashText, imageBytes, ipKeyHash, sectionViews,
  type Sections,
} from './layout.ts';
import { instanceBySlot, type ReadBySlot } from './fields.ts';
import type { Health, Instance } from './instance.ts';

export class ImageFormatError extends Error {
  readonly code = 'IMAGE_FORMAT';
}

const NULL_INT = -1;

export class TopologyImage {
  readonly version: number;
  readonly instanceCount: number;
  readonly groupCount: number;
  /** Instances that carry health data (none: an unmodified BOSH file). */
  readonly healthCount: number;
  readonly hasPtrRecords: boolean;
  readonly byteLength: number;
  private readonly s: Sections;
  /** Latin-1 decoding of the string table without a copy. */
  private readonly text: Buffer;
  /** Each image slot of the instance at an ordinal. */
  private readonly slots: ReadBySlot<number>;

  constructor(readonly buffer: SharedArrayBuffer | ArrayBuffer) {
    if (buffer.byteLength < HEADER_WORDS * 4) throw new ImageFormatError('image shorter than its header');
    const header = new Uint32Array(buffer, 0, HEADER_WORDS);
    if (header[H.magic] !== IMAGE_MAGIC) throw new ImageFormatError('not a topology image (bad magic)');
    if (header[H.format] !== IMAGE_FORMAT) throw new ImageFormatError(`image format ${header[H.format]}, expected ${IMAGE_FORMAT}`);
    const counts = countsOf(header);
    // A reused buffer may be larger than the image it holds.
    if (imageBytes(counts) !== header[H.totalBytes] || buffer.byteLength < header[H.totalBytes]) {
      throw new ImageFormatError('image size does not match its header (truncated?)');
    }
    this.s = sectionViews(buffer, counts);
    this.text = Buffer.from(this.s.strBytes.buffer, this.s.strBytes.byteOffset, this.s.strBytes.byteLength);
    this.version = header[H.versionHigh] * 0x1_0000_0000 + header[H.versionLow];
    this.instanceCount = counts.instances;
    this.groupCount = counts.groups;
    this.healthCount = header[H.healthCount];
    this.hasPtrRecords = (header[H.flags] & FLAG_HAS_PTR_RECORDS) !== 0;
    this.byteLength = header[H.totalBytes];
    const s = this.s;
    this.slots = {
      group: (f, o) => this.string(s[f.image.part][s.instGroup[o]]),
      string: (f, o) => this.string(s[f.image.section][o]),
      optionalString: (f, o) => {
        const id = s[f.image.section][o];
        return id === 0 ? null : this.string(id);
      },
      int: (f, o) => {
        const value = s[f.image.section][o];
        return value === NULL_INT ? null : value;
      },
      health: (_, o) => (s.instHealth[o] === 0 ? null : (HEALTH_CODES[s.instHealth[o]] as Health)),
      ip: (_, o) => ipText(s.instIp, o * 16, s.instFamily[o] as 4 | 6),
      idList: (_, o) => {
        const groupIds: number[] = [];
        for (let k = s.gidOffsets[o]; k < s.gidOffsets[o + 1]; k++) groupIds.push(s.gids[k]);
        return groupIds;
      },
      ports: (_, o) => {
        const ports: Record<string, number> = {};
        for (let k = s.portOffsets[o]; k < s.portOffsets[o + 1]; k++) ports[this.string(s.portNames[k])] = s.portNumbers[k];
        return ports;
      },
    };
  }

  string(id: number): string {
    return this.text.toString('latin1', this.s.strOffsets[id], this.s.strOffsets[id + 1]);
  }

  private equals(id: number, value: string): boolean {
    const start = this.s.strOffsets[id];
    if (this.s.strOffsets[id + 1] - start !== value.length) return false;
    const bytes = this.s.strBytes;
    for (let k = 0; k < value.length; k++) if (bytes[start + k] !== value.charCodeAt(k)) return false;
    return true;
  }

  /** The domains that records live under. */
  domains(): string[] {
    return [...this.s.domainList].map((id) => this.string(id));
  }

  /** The group entry for an exact (domain, group, network, deployment), or -1. */
  findGroup(domain: string, group: string, network: string, deployment: string): number {
    const { s } = this;
    const table = s.tGroup;
    const mask = table.length - 1;
    for (let slot = hashGroup(domain, group, network, deployment) & mask; table[slot] !== 0; slot = (slot + 1) & mask) {
      const g = table[slot] - 1;
      if (this.equals(s.groupName[g], group) && this.equals(s.groupNetwork[g], network)
        && this.equals(s.groupDeployment[g], deployment) && this.equals(s.groupDomain[g], domain)) return g;
    }
    return -1;
  }

  /** Group entries under `domain`, in the order they first appeared. */
  groupsOf(domain: string): Array<{ entry: number; group: string; network: string; deployment: string }> {
    const out = [];
    const { s } = this;
    for (let g = 0; g < this.groupCount; g++) {
      if (!this.equals(s.groupDomain[g], domain)) continue;
      out.push({ entry: g, group: this.string(s.groupName[g]), network: this.string(s.groupNetwork[g]), deployment: this.string(s.groupDeployment[g]) });
    }
    return out;
  }

  /** Ordinals of a group's instances, in file order. */
  members(entry: number): Uint32Array {
    return this.s.members.subarray(this.s.memberOffsets[entry], this.s.memberOffsets[entry + 1]);
  }

  /** Ordinals whose slot in `table` passes `match`, in file order. */
  private probe(table: Uint32Array, hash: number, match: (o: number) => boolean): number[] {
    const out: number[] = [];
    const mask = table.length - 1;
    for (let slot = hash & mask; table[slot] !== 0; slot = (slot + 1) & mask) {
      const o = table[slot] - 1;
      if (match(o)) out.push(o);
    }
    return out.length > 1 ? out.sort((a, b) => a - b) : out;
  }

  byId(id: string): number[] {
    return this.probe(this.s.tId, hashText(hashInit(), id), (o) => this.equals(this.s.instId[o], id));
  }

  byIndex(entry: number, index: number): number[] {
    const { s } = this;
    return this.probe(s.tIndex, hashGroupIndex(entry, index), (o) => s.instGroup[o] === entry && s.instIndex[o] === index);
  }

  byGroupId(domain: string, gid: number): number[] {
    const { s } = this;
    return this.probe(s.tGid, hashGroupId(domain, gid), (o) => this.equals(s.groupDomain[s.instGroup[o]], domain) && this.hasGroupId(o, gid));
  }

  byAgent(agent: string): number[] {
    return this.probe(this.s.tAgent, hashText(hashInit(), agent), (o) => this.equals(this.s.instAgent[o], agent));
  }

  /** Instances with this address (canonical text); empty when the file carries BOSH's records list. */
  byIp(ip: string): number[] {
    const key = ipKey(ip);
    if (!key) return [];
    const { s } = this;
    return this.probe(s.tIp, ipKeyHash(key.bytes, 0, key.family), (o) => s.instFamily[o] === key.family && sameBytes(s.instIp, o * 16, key.bytes));
  }

  /** Names BOSH's `records` list gives this address (canonical text). */
  ptrRecordNames(ip: string): string[] {
    const key = ipKey(ip);
    if (!key) return [];
    const { s } = this;
    return this.probe(s.tPtr, ipKeyHash(key.bytes, 0, key.family), (r) => s.ptrFamily[r] === key.family && sameBytes(s.ptrIp, r * 16, key.bytes))
      .map((r) => this.string(s.ptrName[r]));
  }

  private hasGroupId(o: number, gid: number): boolean {
    const { s } = this;
    for (let k = s.gidOffsets[o]; k < s.gidOffsets[o + 1]; k++) if (s.gids[k] === gid) return true;
    return false;
  }

  /** The instance's id-form name, `<id>.<group>.<network>.<deployment>.<domain>`. */
  name(o: number): string {
    const { s } = this;
    const g = s.instGroup[o];
    return `${this.string(s.instId[o])}.${this.string(s.groupName[g])}.${this.string(s.groupNetwork[g])}.${this.string(s.groupDeployment[g])}.${this.string(s.groupDomain[g])}`;
  }

  instance(o: number): Instance {
    return instanceBySlot(this.slots, o);
  }

  /** The group entry an instance belongs to. */
  groupOf(o: number): number {
    return this.s.instGroup[o];
  }

  /** The cell of an instance without materialising it (the syncer's guard counts cells). */
  cellOf(o: number): string | null {
    const id = this.s.instCell[o];
    return id === 0 ? null : this.string(id);
  }
}

function ipKey(ip: string): { family: 4 | 6; bytes: Uint8Array } | null {
  const parsed = parseIp(ip);
  return parsed ? { family: parsed.family, bytes: ipBytes(parsed) } : null;
}

function sameBytes(bytes: Uint8Array, offset: number, key: Uint8Array): boolean {
  for (let k = 0; k < 16; k++) if (bytes[offset + k] !== key[k]) return false;
  return true;
}

/** The canonical text of a stored address (dotted quad, or fully expanded IPv6). */
function ipText(bytes: Uint8Array, offset: number, family: 4 | 6): string {
  if (family === 4) return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
  const groups: string[] = [];
  for (let k = 0; k < 8; k++) groups.push(((bytes[offset + k * 2] << 8) | bytes[offset + k * 2 + 1]).toString(16).padStart(4, '0'));
  return groups.join(':');
}
