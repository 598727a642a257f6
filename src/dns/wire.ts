// DNS wire format (RFC 1035, RFC 6891): decoding the parts of a query the server needs
// (header, question, EDNS OPT) and encoding a response from a resolver's value. Pure: no
// sockets here. Decoding never allocates more than the packet it reads, and every loop
// is bounded by the packet's length, so hostile input cannot blow up memory or time.
// Encoding refuses, with an UnencodableError, any name or address it cannot write.
import { isIPv6 } from 'node:net';
import { nameProblem } from '../util/dns-name.ts';
import { ipv6Bytes } from '../util/ip.ts';

export const RRType = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, ANY: 255,
} as const;

export const Rcode = {
  NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16,
} as const;

export const CLASS_IN = 1;
export const HEADER_SIZE = 12;
export const MIN_UDP_SIZE = 512;

/** Bits of the header's flags word (RFC 1035 §4.1.1, RFC 4035 for AD/CD). */
export const Flag = {
  QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080, AD: 0x0020, CD: 0x0010,
} as const;

export interface Edns {
  udpSize: number;
  version: number;
  dnssecOk: boolean;
}

export interface Question {
  /** The name as asked, without the trailing dot, case preserved. "" is the root. */
  name: string;
  type: number;
  class: number;
}

export interface DecodedQuery {
  id: number;
  opcode: number;
  recursionDesired: boolean;
  checkingDisabled: boolean;
  question: Question;
  /** Byte offset where the question section ends (the question is copied verbatim). */
  questionEnd: number;
  edns: Edns | null;
}

export type DecodeResult =
  | { ok: true; query: DecodedQuery }
  /** The header was readable but the rest was not: answer FORMERR with this id. */
  | { ok: false; id: number; opcode: number; recursionDesired: boolean; reason: string }
  /** Not even a header, or a response packet: drop silently. */
  | { ok: false; id: null; reason: string };

export type ResourceRecord =
  | { name: string; ttl: number; type: typeof RRType.A | typeof RRType.AAAA; address: string }
  | { name: string; ttl: number; type: typeof RRType.PTR | typeof RRType.CNAME | typeof RRType.NS; target: string }
  | { name: string; ttl: number; type: typeof RRType.SRV; priority: number; weight: number; port: number; target: string }
  | {
      name: string; ttl: number; type: typeof RRType.SOA; mname: string; rname: string;
      serial: number; refresh: number; retry: number; expire: number; minimum: number;
    };

/** What a resolver decides; the encoder turns it into bytes. */
export interface DnsResult {
  rcode: number;
  authoritative: boolean;
  answers: ResourceRecord[];
  authority: ResourceRecord[];
  additional: ResourceRecord[];
}

export interface EdnsOption {
  code: number;
  data: Buffer;
}

export interface EncodeOptions {
  /** Largest message the transport may carry (UDP: negotiated size; TCP: 65535). */
  maxSize: number;
  recursionAvailable: boolean;
  /** Our advertised UDP payload size in the OPT record, when the query had EDNS. */
  ednsUdpSize: number;
  ednsOptions?: EdnsOption[];
}

class MalformedPacket extends Error {}

function readName(buf: Buffer, start: number, allowPointers: boolean): { name: string; end: number } {
  const labels: string[] = [];
  let offset = start;
  let end = -1;
  let jumps = 0;
  let length = 0;
  for (;;) {
    if (offset >= buf.length) throw new MalformedPacket('name runs past the packet');
    const len = buf[offset];
    if (len === 0) {
      if (end < 0) end = offset + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (!allowPointers) throw new MalformedPacket('compression pointer in question');
      if (offset + 1 >= buf.length) throw new MalformedPacket('truncated pointer');
      if (++jumps > 32) throw new MalformedPacket('pointer loop');
      if (end < 0) end = offset + 2;
      offset = ((len & 0x3f) << 8) | buf[offset + 1];
      continue;
    }
    if (len & 0xc0) throw new MalformedPacket('unknown label type');
    if (offset + 1 + len > buf.length) throw new MalformedPacket('label runs past the packet');
    length += len + 1;
    // 255 bytes on the wire with the root label's zero: 253 characters in text form.
    if (length + 1 > 255) throw new MalformedPacket('name longer than 255 bytes');
    const label = buf.toString('latin1', offset + 1, offset + 1 + len);
    // A dot inside a label cannot be told apart from a separator in our string form.
    if (label.includes('.')) throw new MalformedPacket('label contains a dot');
    labels.push(label);
    offset += 1 + len;
  }
  return { name: labels.join('.'), end };
}

function skipRecord(buf: Buffer, offset: number): { type: number; klass: number; ttl: number; rdStart: number; end: number } {
  const { end: nameEnd } = readName(buf, offset, true);
  if (nameEnd + 10 > buf.length) throw new MalformedPacket('record header runs past the packet');
  const type = buf.readUInt16BE(nameEnd);
  const klass = buf.readUInt16BE(nameEnd + 2);
  const ttl = buf.readUInt32BE(nameEnd + 4);
  const rdLength = buf.readUInt16BE(nameEnd + 8);
  const rdStart = nameEnd + 10;
  if (rdStart + rdLength > buf.length) throw new MalformedPacket('rdata runs past the packet');
  return { type, klass, ttl, rdStart, end: rdStart + rdLength };
}

export function decodeQuery(buf: Buffer): DecodeResult {
  if (buf.length < HEADER_SIZE) return { ok: false, id: null, reason: 'shorter than a DNS header' };
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  if (flags & Flag.QR) return { ok: false, id: null, reason: 'a response, not a query' };
  const opcode = (flags >> 11) & 0x0f;
  const recursionDesired = (flags & Flag.RD) !== 0;
  const fail = (reason: string): DecodeResult => ({ ok: false, id, opcode, recursionDesired, reason });
  const qdcount = buf.readUInt16BE(4);
  if (qdcount !== 1) return fail(`expected one question, got ${qdcount}`);
  try {
    const { name, end } = readName(buf, HEADER_SIZE, false);
    if (end + 4 > buf.length) return fail('question runs past the packet');
    const question: Question = { name, type: buf.readUInt16BE(end), class: buf.readUInt16BE(end + 2) };
    const questionEnd = end + 4;
    const others = buf.readUInt16BE(6) + buf.readUInt16BE(8);
    const arcount = buf.readUInt16BE(10);
    let offset = questionEnd;
    for (let i = 0; i < others; i++) offset = skipRecord(buf, offset).end;
    let edns: Edns | null = null;
    for (let i = 0; i < arcount; i++) {
      const rec = skipRecord(buf, offset);
      if (rec.type === RRType.OPT) {
        if (edns) return fail('more than one OPT record');
        edns = { udpSize: rec.klass, version: (rec.ttl >>> 16) & 0xff, dnssecOk: (rec.ttl & 0x8000) !== 0 };
      }
      offset = rec.end;
    }
    return {
      ok: true,
      query: { id, opcode, recursionDesired, checkingDisabled: (flags & Flag.CD) !== 0, question, questionEnd, edns },
    };
  } catch (err) {
    if (err instanceof MalformedPacket) return fail(err.message);
    throw err;
  }
}

/** UDP payload the client can take: 512 without EDNS, else its size clamped to ours. */
export function udpLimit(query: DecodedQuery, ourMax: number): number {
  if (!query.edns) return MIN_UDP_SIZE;
  return Math.max(MIN_UDP_SIZE, Math.min(query.edns.udpSize, ourMax));
}

/** Growable-by-bound writer with RFC 1035 name compression. */
class MessageWriter {
  readonly buf: Buffer;
  offset = 0;
  private readonly names = new Map<string, number>();

  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  fits(bytes: number): boolean {
    return this.offset + bytes <= this.buf.length;
  }

  u8(v: number): void {
    this.need(1);
    this.buf[this.offset++] = v;
  }

  u16(v: number): void {
    this.need(2);
    this.buf.writeUInt16BE(v, this.offset);
    this.offset += 2;
  }

  u32(v: number): void {
    this.need(4);
    this.buf.writeUInt32BE(v >>> 0, this.offset);
    this.offset += 4;
  }

  bytes(b: Buffer): void {
    this.need(b.length);
    b.copy(this.buf, this.offset);
    this.offset += b.length;
  }

  /** Writes a name, pointing at an earlier copy of any suffix (case-insensitively). */
  name(name: string): void {
    const labels = name === '' ? [] : name.split('.');
    checkName(name);
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.').toLowerCase();
      const pointer = this.names.get(suffix);
      if (pointer !== undefined) {
        this.u16(0xc000 | pointer);
        return;
      }
      if (this.offset < 0x3fff) this.names.set(suffix, this.offset);
      const label = Buffer.from(labels[i], 'latin1');
      this.u8(label.length);
      this.bytes(label);
    }
    this.u8(0);
  }

  private need(n: number): void {
    if (this.offset + n > this.buf.length) throw new MessageFull();
  }
}

class MessageFull extends Error {}

/**
 * A value the wire format cannot carry (a bad name or address). Thrown before anything
 * is written, so a caller never sends a malformed message; it is a bug upstream (the
 * topology reader lets no such value through), answered SERVFAIL by the server.
 */
export class UnencodableError extends Error {}

function checkName(name: string): void {
  const problem = nameProblem(name);
  if (problem) throw new UnencodableError(`cannot encode the name ${JSON.stringify(name)}: it ${problem}`);
}

function writeAddress(w: MessageWriter, rr: { type: number; address: string }): void {
  if (rr.type === RRType.A) {
    const octets = rr.address.split('.').map((part) => (/^\d{1,3}$/.test(part) ? Number(part) : NaN));
    if (octets.length !== 4 || !octets.every((o) => o <= 255)) throw new UnencodableError(`cannot encode the IPv4 address ${JSON.stringify(rr.address)}`);
    w.u16(4);
    for (const octet of octets) w.u8(octet);
  } else {
    if (!isIPv6(rr.address)) throw new UnencodableError(`cannot encode the IPv6 address ${JSON.stringify(rr.address)}`);
    w.u16(16);
    w.bytes(ipv6Bytes(rr.address));
  }
}

function writeRecord(w: MessageWriter, rr: ResourceRecord): void {
  w.name(rr.name);
  w.u16(rr.type);
  w.u16(CLASS_IN);
  w.u32(rr.ttl);
  switch (rr.type) {
    case RRType.A:
    case RRType.AAAA:
      writeAddress(w, rr);
      return;
    default:
      break;
  }
  const lengthAt = w.offset;
  w.u16(0);
  switch (rr.type) {
    case RRType.PTR:
    case RRType.CNAME:
    case RRType.NS:
      w.name(rr.target);
      break;
    case RRType.SRV:
      w.u16(rr.priority);
      w.u16(rr.weight);
      w.u16(rr.port);
      w.name(rr.target);
      break;
    case RRType.SOA:
      w.name(rr.mname);
      w.name(rr.rname);
      w.u32(rr.serial);
      w.u32(rr.refresh);
      w.u32(rr.retry);
      w.u32(rr.expire);
      w.u32(rr.minimum);
      break;
  }
  w.buf.writeUInt16BE(w.offset - lengthAt - 2, lengthAt);
}

function optRecordSize(options: EdnsOption[]): number {
  return 11 + options.reduce((n, o) => n + 4 + o.data.length, 0);
}

function writeOpt(w: MessageWriter, udpSize: number, extendedRcode: number, options: EdnsOption[]): void {
  w.u8(0);
  w.u16(RRType.OPT);
  w.u16(udpSize);
  w.u32((extendedRcode >> 4) << 24);
  w.u16(options.reduce((n, o) => n + 4 + o.data.length, 0));
  for (const o of options) {
    w.u16(o.code);
    w.u16(o.data.length);
    w.bytes(o.data);
  }
}

/**
 * Encodes a response to `query`: the question is copied from the query bytes (so the
 * answer echoes the client's case), records are added in order until `maxSize`, and
 * any record that does not fit sets TC=1 — never a silent truncation.
 */
export function encodeResponse(queryPacket: Buffer, query: DecodedQuery, result: DnsResult, options: EncodeOptions): Buffer {
  const ednsOptions = query.edns ? (options.ednsOptions ?? []) : [];
  const optSize = query.edns ? optRecordSize(ednsOptions) : 0;
  const w = new MessageWriter(Math.max(options.maxSize, query.questionEnd + optSize) - optSize);
  w.offset = HEADER_SIZE;
  w.name(query.question.name);
  // Overwrite the lower-cased question bytes with the query's own: same length, same case.
  queryPacket.copy(w.buf, HEADER_SIZE, HEADER_SIZE, query.questionEnd - 4);
  w.u16(query.question.type);
  w.u16(query.question.class);

  const counts = [0, 0, 0];
  let truncated = false;
  const sections = [result.answers, result.authority, result.additional];
  outer: for (let s = 0; s < sections.length; s++) {
    for (const rr of sections[s]) {
      const mark = w.offset;
      try {
        writeRecord(w, rr);
        counts[s]++;
      } catch (err) {
        if (!(err instanceof MessageFull)) throw err;
        w.offset = mark;
        truncated = true;
        break outer;
      }
    }
  }
  const rcode = query.edns ? result.rcode & 0x0f : result.rcode > 15 ? Rcode.SERVFAIL : result.rcode;
  let flags = Flag.QR | (query.opcode << 11) | (rcode & 0x0f);
  if (result.authoritative) flags |= Flag.AA;
  if (truncated) flags |= Flag.TC;
  if (query.recursionDesired) flags |= Flag.RD;
  if (options.recursionAvailable) flags |= Flag.RA;
  if (query.checkingDisabled) flags |= Flag.CD;
  const out = Buffer.allocUnsafe(w.offset + optSize);
  w.buf.copy(out, 0, 0, w.offset);
  out.writeUInt16BE(query.id, 0);
  out.writeUInt16BE(flags, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(counts[0], 6);
  out.writeUInt16BE(counts[1], 8);
  out.writeUInt16BE(counts[2] + (query.edns ? 1 : 0), 10);
  if (query.edns) {
    const ow = new MessageWriter(optSize);
    writeOpt(ow, options.ednsUdpSize, result.rcode, ednsOptions);
    ow.buf.copy(out, w.offset);
  }
  return out;
}

/** A header-only reply (FORMERR, REFUSED, ...) for a packet whose question we could not use. */
export function encodeBareReply(id: number, opcode: number, recursionDesired: boolean, rcode: number): Buffer {
  const out = Buffer.alloc(HEADER_SIZE);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(Flag.QR | (opcode << 11) | (recursionDesired ? Flag.RD : 0) | rcode, 2);
  return out;
}

export function rrTypeName(type: number): string {
  for (const [name, value] of Object.entries(RRType)) if (value === type) return name;
  return `TYPE${type}`;
}
