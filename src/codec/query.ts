// Decoding a query (RFC 1035 §4.1, RFC 6891 §6.1): the header, the one question in the
// client's case, and a lone OPT record; the other records are walked only to find the OPT
// and to reject what is malformed. Never allocates more than the packet it reads, and
// every loop is bounded by the packet's length.
import { skipName, readName } from './name.ts';
import { Flag, HEADER_SIZE, MalformedMessage, RRType } from './protocol.ts';

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

/** The type, class and TTL of the record at `offset`, and where it ends. */
function skipRecord(buf: Buffer, offset: number): { type: number; klass: number; ttl: number; end: number } {
  const nameEnd = skipName(buf, offset, 'follow');
  if (nameEnd + 10 > buf.length) throw new MalformedMessage('record header runs past the packet');
  const rdStart = nameEnd + 10;
  const end = rdStart + buf.readUInt16BE(nameEnd + 8);
  if (end > buf.length) throw new MalformedMessage('rdata runs past the packet');
  return { type: buf.readUInt16BE(nameEnd), klass: buf.readUInt16BE(nameEnd + 2), ttl: buf.readUInt32BE(nameEnd + 4), end };
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
    const { name, end } = readName(buf, HEADER_SIZE, 'refuse');
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
    if (err instanceof MalformedMessage) return fail(err.message);
    throw err;
  }
}
