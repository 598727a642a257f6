// The fast path's cache key, read straight off a query's bytes: a response to one
// (lower-cased name, type, class, EDNS or not, size limit) is the same bytes for every
// client apart from the ID, the RD/CD bits and the case of the question, so that is what
// an encoded answer is kept under. Reads the header, the question and a lone OPT record
// and nothing else; whatever it is not sure about is no key, and the query decoder
// (query.ts) reads it instead. A packet it makes a key of always decodes.
import { HEADER_SIZE, replyLimit, RRType, type Transport } from './protocol.ts';

/** What `fastKey` learned besides the key. */
export interface FastQuestion {
  /** Offset where the question name ends (the bytes a reply copies from the query). */
  nameEnd: number;
  type: number;
}

/** A name of more bytes, with the root's zero, than the decoder takes (255). */
const MAX_NAME_LABEL_BYTES = 254;
/** The QR bit and the opcode: a plain query has them all zero. */
const OPCODE_OR_QR = 0xf8;
/** Marks "no EDNS" in a key (every real limit is ≥ 512), so EDNS-512 and plain 512 differ. */
const NO_EDNS = 1;
const EDNS = 2;

/** Bytes a key can take: the name (255) and 7 bytes of type, class, EDNS mark and limit. */
export const FAST_KEY_BYTES = 262;

/**
 * Writes the cache key of `packet` into `scratch` (FAST_KEY_BYTES): the question name in
 * wire form lower-cased, type, class, EDNS or not, and the reply's size limit; returns its
 * length and fills `out`. Returns 0 for anything unusual — not a plain query, several
 * questions or records, compression pointers or odd labels in the name, an additional
 * record other than a root OPT of version 0 — which the general path decides.
 */
export function fastKey(packet: Buffer, transport: Transport, maxUdpSize: number, scratch: Buffer, out: FastQuestion): number {
  const length = packet.length;
  if (length < HEADER_SIZE + 5) return 0;
  if (packet[2] & OPCODE_OR_QR) return 0;
  if (packet[4] !== 0 || packet[5] !== 1) return 0;
  if (packet[6] | packet[7] | packet[8] | packet[9] | packet[10]) return 0;
  const arcount = packet[11];
  if (arcount > 1) return 0;
  let offset = HEADER_SIZE;
  for (;;) {
    if (offset >= length) return 0;
    const label = packet[offset];
    if (label === 0) break;
    // Pointers and extended label types are for the decoder (FORMERR).
    if (label > 63) return 0;
    const end = offset + 1 + label;
    if (end > length || end - HEADER_SIZE > MAX_NAME_LABEL_BYTES) return 0;
    for (let i = offset + 1; i < end; i++) {
      const c = packet[i];
      // Dots inside labels and non-ASCII bytes are rare; the decoder decides them.
      if (c === 0x2e || c >= 0x80) return 0;
      scratch[i - HEADER_SIZE] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
    scratch[offset - HEADER_SIZE] = label;
    offset = end;
  }
  const nameEnd = offset + 1;
  const questionEnd = nameEnd + 4;
  if (questionEnd > length) return 0;
  let ednsUdpSize: number | null = null;
  if (arcount === 1) {
    // Only a root-owned OPT of version 0 whose options fit the packet.
    if (packet[questionEnd] !== 0 || questionEnd + 11 > length) return 0;
    if (packet.readUInt16BE(questionEnd + 1) !== RRType.OPT) return 0;
    if (packet[questionEnd + 6] !== 0) return 0;
    if (questionEnd + 11 + packet.readUInt16BE(questionEnd + 9) > length) return 0;
    ednsUdpSize = packet.readUInt16BE(questionEnd + 3);
  }
  const nameLength = nameEnd - HEADER_SIZE;
  scratch[nameLength - 1] = 0;
  packet.copy(scratch, nameLength, nameEnd, questionEnd);
  scratch[nameLength + 4] = ednsUdpSize === null ? NO_EDNS : EDNS;
  scratch.writeUInt16BE(replyLimit(transport, ednsUdpSize, maxUdpSize), nameLength + 5);
  out.nameEnd = nameEnd;
  out.type = packet.readUInt16BE(nameEnd);
  return nameLength + 7;
}
