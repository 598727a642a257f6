// Encoding a response to a decoded query from a resolver's value: the question copied
// from the query's bytes (so the client's case is echoed), records in order until the
// size limit, TC when one does not fit — never a silent truncation — and our OPT record
// for an EDNS client. Also the header-only reply to a packet whose question is unusable.
import { isIPv6 } from 'node:net';
import { ipv6Bytes } from '../util/ip.ts';
import { optSize, writeOpt, type EdnsOption, type OptRecord } from './edns.ts';
import type { DecodedQuery } from './query.ts';
import { CLASS_IN, Flag, HEADER_SIZE, Rcode, replyLimit, RRType, type Transport } from './protocol.ts';
import { MessageFull, MessageWriter, UnencodableError } from './writer.ts';

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

/** What sizes a reply to a query and what its OPT record holds: given to every writer of replies. */
export interface ReplyOptions {
  /** The transport the reply goes over: it bounds the reply's size (replyLimit). */
  transport: Transport;
  /** The largest UDP reply we send (dns.max_udp_size), and the size our OPT record advertises. */
  maxUdpSize: number;
  /** Options of our OPT record (an EDNS client's reply only). */
  ednsOptions?: EdnsOption[];
}

export interface EncodeOptions extends ReplyOptions {
  recursionAvailable: boolean;
}

/** Our OPT record in a reply, and the bytes the rest of the reply may take. */
export interface ReplyFrame {
  /** null: the query had no OPT record, so the reply has none. */
  opt: OptRecord | null;
  optBytes: number;
  /** What the client can take, less the OPT record. */
  room: number;
}

/**
 * The frame of a reply to `query`: our OPT record when the query had one (advertising
 * `maxUdpSize`, with the rcode's upper bits and the DO bit given) and the room left for
 * header, question and records within the size the client can take.
 */
export function replyFrame(query: DecodedQuery, options: ReplyOptions, rcode: number, dnssecOk: boolean): ReplyFrame {
  const opt = query.edns ? { udpSize: options.maxUdpSize, rcode, dnssecOk, options: options.ednsOptions } : null;
  const optBytes = opt ? optSize(opt) : 0;
  return { opt, optBytes, room: replyLimit(options.transport, query.edns?.udpSize ?? null, options.maxUdpSize) - optBytes };
}

const IPV4_OCTET = /^\d{1,3}$/;

function writeAddress(w: MessageWriter, rr: { type: number; address: string }): void {
  if (rr.type === RRType.A) {
    const octets = rr.address.split('.').map((part) => (IPV4_OCTET.test(part) ? Number(part) : NaN));
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
  if (rr.type === RRType.A || rr.type === RRType.AAAA) {
    writeAddress(w, rr);
    return;
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

/**
 * Encodes a response to `query`: the question is copied from the query bytes (so the
 * answer echoes the client's case), records are added in order until the size the client
 * can take, and any record that does not fit sets TC=1 — never a silent truncation.
 */
export function encodeResponse(queryPacket: Buffer, query: DecodedQuery, result: DnsResult, options: EncodeOptions): Buffer {
  // The platform answers no DNSSEC: DO is not echoed.
  const { opt, optBytes, room } = replyFrame(query, options, result.rcode, false);
  // The question is always written, whatever the client's size.
  const w = new MessageWriter(Math.max(room, query.questionEnd));
  w.offset = HEADER_SIZE;
  // Written for its compression targets, then overwritten with the query's own bytes: same length, the client's case.
  w.name(query.question.name);
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
  // Without EDNS there is nowhere for an rcode above 15 to go.
  const rcode = opt ? result.rcode & 0x0f : result.rcode > 15 ? Rcode.SERVFAIL : result.rcode;
  let flags = Flag.QR | (query.opcode << 11) | rcode;
  if (result.authoritative) flags |= Flag.AA;
  if (truncated) flags |= Flag.TC;
  if (query.recursionDesired) flags |= Flag.RD;
  if (options.recursionAvailable) flags |= Flag.RA;
  if (query.checkingDisabled) flags |= Flag.CD;
  const out = Buffer.allocUnsafe(w.offset + optBytes);
  w.buf.copy(out, 0, 0, w.offset);
  out.writeUInt16BE(query.id, 0);
  out.writeUInt16BE(flags, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(counts[0], 6);
  out.writeUInt16BE(counts[1], 8);
  out.writeUInt16BE(counts[2] + (opt ? 1 : 0), 10);
  if (opt) writeOpt(out, w.offset, opt);
  return out;
}

/** A header-only reply (FORMERR, REFUSED, ...) for a packet whose question we could not use. */
export function encodeBareReply(id: number, opcode: number, recursionDesired: boolean, rcode: number): Buffer {
  const out = Buffer.alloc(HEADER_SIZE);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(Flag.QR | (opcode << 11) | (recursionDesired ? Flag.RD : 0) | rcode, 2);
  return out;
}
