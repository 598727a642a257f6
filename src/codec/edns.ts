// EDNS (RFC 6891): the OPT record every reply of ours carries to an EDNS client and every
// query to an upstream carries, and the Extended DNS Errors it may hold (RFC 8914). One
// writer for the platform encoder, the forwarder's replayed replies and its upstream
// queries. Reading a query's OPT record is the query decoder's (query.ts).
import { RRType } from './protocol.ts';

export interface EdnsOption {
  code: number;
  data: Buffer;
}

/** An OPT record to write. */
export interface OptRecord {
  /** The UDP payload size we advertise. */
  udpSize: number;
  /** The rcode of the reply: its bits above the header's four go in the OPT record (BADVERS). */
  rcode?: number;
  /** DO: DNSSEC records wanted (a query), or the asker had set it (a reply). */
  dnssecOk?: boolean;
  options?: readonly EdnsOption[];
}

/** RFC 8914 Extended DNS Errors, the info codes we send. */
export const EdeCode = { STALE_ANSWER: 3, NO_REACHABLE_AUTHORITY: 22 } as const;

const EDE_OPTION = 15;
const DNSSEC_OK = 0x8000;
/** Owner (root, one byte), type, class, TTL, RDLENGTH. */
const OPT_FIXED_SIZE = 11;

/** An Extended DNS Error option with an info code and, optionally, extra text. */
export function edeOption(infoCode: number, text = ''): EdnsOption {
  const data = Buffer.alloc(2 + Buffer.byteLength(text));
  data.writeUInt16BE(infoCode, 0);
  data.write(text, 2);
  return { code: EDE_OPTION, data };
}

function optionsSize(options: readonly EdnsOption[]): number {
  let size = 0;
  for (const o of options) size += 4 + o.data.length;
  return size;
}

/** Bytes the OPT record takes. */
export function optSize(opt: OptRecord): number {
  return OPT_FIXED_SIZE + optionsSize(opt.options ?? []);
}

/** Writes the OPT record at `at` in `buf` (room for `optSize(opt)` bytes); returns the offset past it. */
export function writeOpt(buf: Buffer, at: number, opt: OptRecord): number {
  const options = opt.options ?? [];
  buf[at] = 0;
  buf.writeUInt16BE(RRType.OPT, at + 1);
  buf.writeUInt16BE(opt.udpSize, at + 3);
  // TTL: extended rcode (the rcode's bits above the header's four), version 0, the DO bit.
  buf.writeUInt32BE(((((opt.rcode ?? 0) >> 4) << 24) | (opt.dnssecOk ? DNSSEC_OK : 0)) >>> 0, at + 5);
  buf.writeUInt16BE(optionsSize(options), at + 9);
  let offset = at + OPT_FIXED_SIZE;
  for (const o of options) {
    buf.writeUInt16BE(o.code, offset);
    buf.writeUInt16BE(o.data.length, offset + 2);
    o.data.copy(buf, offset + 4);
    offset += 4 + o.data.length;
  }
  return offset;
}
