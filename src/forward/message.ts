// Upstream messages as bytes. The forwarder cannot model every record type, so it keeps
// the upstream's answer as an opaque message (without its OPT record) plus the offsets of
// every TTL field; answering a client copies those bytes, patches the ID, the flags, the
// question's case and the TTLs, and appends our own OPT. Pure: no sockets here; the wire
// format (names, OPT, limits) is the codec's.
import {
  Flag, HEADER_SIZE, lowerCaseName, MalformedMessage, optSize, replyFrame, RRType, skipName, writeOpt,
  type DecodedQuery, type OptRecord, type ReplyOptions,
} from '../codec/index.ts';

/** What we advertise to upstreams: large enough for most answers, small enough not to fragment. */
export const UPSTREAM_UDP_SIZE = 1232;

/** An upstream's answer, ready to be replayed to clients. */
export interface StoredMessage {
  /** Header, question and records, without the OPT record (and anything after it). */
  message: Buffer;
  questionEnd: number;
  rcode: number;
  /** Upstream flags we pass on (only AD, and only to clients that asked with DO). */
  authenticData: boolean;
  /** Per record, in message order: section (0 answer, 1 authority, 2 additional), TTL offset, TTL, end offset. */
  sections: number[];
  ttlOffsets: number[];
  ttls: number[];
  recordEnds: number[];
  /** Seconds the answer may be cached: the smallest record TTL, or for a negative answer the SOA's (RFC 2308); null when it must not be cached. */
  cacheTtl: number | null;
}

export type ParseResult =
  | { ok: true; id: number; truncated: boolean; stored: StoredMessage }
  | { ok: false; reason: string };

/** The query we send upstream: fresh ID, RD, the client's question (lower-cased), EDNS with DO when the client set it. */
export function buildUpstreamQuery(id: number, packet: Buffer, query: DecodedQuery): Buffer {
  const question = lowerCaseName(packet.subarray(HEADER_SIZE, query.questionEnd));
  const opt: OptRecord = { udpSize: UPSTREAM_UDP_SIZE, dnssecOk: query.edns?.dnssecOk ?? false };
  const out = Buffer.alloc(HEADER_SIZE + question.length + optSize(opt));
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(Flag.RD | (query.checkingDisabled ? Flag.CD : 0), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(1, 10);
  question.copy(out, HEADER_SIZE);
  writeOpt(out, HEADER_SIZE + question.length, opt);
  return out;
}

/**
 * Checks an upstream reply against the query we sent (ID, QR, same question) and indexes
 * its records. Anything unexpected is a failure of that upstream, never an answer.
 */
export function parseUpstreamResponse(buf: Buffer, sent: Buffer): ParseResult {
  try {
    if (buf.length < HEADER_SIZE) throw new MalformedMessage('shorter than a DNS header');
    const id = buf.readUInt16BE(0);
    const flags = buf.readUInt16BE(2);
    if (id !== sent.readUInt16BE(0)) throw new MalformedMessage('ID does not match the query');
    if (!(flags & Flag.QR)) throw new MalformedMessage('not a response');
    if (buf.readUInt16BE(4) !== 1) throw new MalformedMessage('expected one question');
    const questionEnd = skipName(buf, HEADER_SIZE, 'stop') + 4;
    const sentQuestionEnd = skipName(sent, HEADER_SIZE, 'stop') + 4;
    if (questionEnd > buf.length || !lowerCaseName(buf.subarray(HEADER_SIZE, questionEnd)).equals(sent.subarray(HEADER_SIZE, sentQuestionEnd))) {
      throw new MalformedMessage('question does not match the query');
    }
    const counts = [buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)];
    const stored: StoredMessage = {
      message: buf, questionEnd, rcode: flags & 0x0f, authenticData: (flags & Flag.AD) !== 0,
      sections: [], ttlOffsets: [], ttls: [], recordEnds: [], cacheTtl: null,
    };
    let offset = questionEnd;
    let minTtl = Infinity;
    let negativeTtl: number | null = null;
    let end = questionEnd;
    outer: for (let section = 0; section < 3; section++) {
      for (let i = 0; i < counts[section]; i++) {
        const nameEnd = skipName(buf, offset, 'stop');
        if (nameEnd + 10 > buf.length) throw new MalformedMessage('record header runs past the message');
        const type = buf.readUInt16BE(nameEnd);
        const ttl = buf.readUInt32BE(nameEnd + 4);
        const rdEnd = nameEnd + 10 + buf.readUInt16BE(nameEnd + 8);
        if (rdEnd > buf.length) throw new MalformedMessage('rdata runs past the message');
        // Our own OPT replaces the upstream's; records after it are optional extras we drop.
        if (type === RRType.OPT) {
          if (section !== 2) throw new MalformedMessage('OPT record outside the additional section');
          break outer;
        }
        stored.sections.push(section);
        stored.ttlOffsets.push(nameEnd + 4);
        stored.ttls.push(ttl);
        stored.recordEnds.push(rdEnd);
        minTtl = Math.min(minTtl, ttl);
        if (section === 1 && type === RRType.SOA && rdEnd - 4 >= nameEnd + 10) {
          negativeTtl = Math.min(ttl, buf.readUInt32BE(rdEnd - 4));
        }
        offset = end = rdEnd;
      }
    }
    // A buffer of its own, not a slice of Node's shared 8 KiB pool: a cached message would
    // keep its whole slab alive, and the cache's evictions leave most slabs with one entry.
    stored.message = Buffer.allocUnsafeSlow(end);
    buf.copy(stored.message, 0, 0, end);
    stored.message.writeUInt16BE(0, 0);
    const answers = stored.sections.filter((s) => s === 0).length;
    const negative = stored.rcode === 3 || (stored.rcode === 0 && answers === 0);
    if (stored.rcode === 0 || stored.rcode === 3) stored.cacheTtl = negative ? negativeTtl : minTtl === Infinity ? null : minTtl;
    return { ok: true, id, truncated: (flags & Flag.TC) !== 0, stored };
  } catch (err) {
    if (err instanceof MalformedMessage) return { ok: false, reason: err.message };
    throw err;
  }
}

export interface RenderOptions extends ReplyOptions {
  /** The client's query: its ID, flags and question bytes (for the case it asked in). */
  query: DecodedQuery;
  packet: Buffer;
  /** TTL to send for a record whose stored TTL is `ttl`. */
  ttl: (ttl: number) => number;
}

/**
 * A reply to one client from a stored message: whole records up to what the client can
 * take (TC=1 when any had to be left out, so the client retries over TCP), TTLs rewritten,
 * our OPT last for an EDNS client (with its DO bit echoed).
 */
export function renderReply(stored: StoredMessage, options: RenderOptions): Buffer {
  const { query } = options;
  const { opt, optBytes, room } = replyFrame(query, options, 0, query.edns?.dnssecOk ?? false);
  let kept = 0;
  while (kept < stored.recordEnds.length && stored.recordEnds[kept] <= room) kept++;
  const truncated = kept < stored.recordEnds.length;
  const end = kept > 0 ? stored.recordEnds[kept - 1] : stored.questionEnd;
  const out = Buffer.allocUnsafe(end + optBytes);
  stored.message.copy(out, 0, 0, end);
  options.packet.copy(out, HEADER_SIZE, HEADER_SIZE, query.questionEnd);
  let flags = Flag.QR | Flag.RA | stored.rcode;
  if (truncated) flags |= Flag.TC;
  if (query.recursionDesired) flags |= Flag.RD;
  if (query.checkingDisabled) flags |= Flag.CD;
  if (stored.authenticData && query.edns?.dnssecOk) flags |= Flag.AD;
  out.writeUInt16BE(query.id, 0);
  out.writeUInt16BE(flags, 2);
  const counts = [0, 0, 0];
  for (let i = 0; i < kept; i++) {
    counts[stored.sections[i]]++;
    out.writeUInt32BE(options.ttl(stored.ttls[i]) >>> 0, stored.ttlOffsets[i]);
  }
  out.writeUInt16BE(counts[0], 6);
  out.writeUInt16BE(counts[1], 8);
  out.writeUInt16BE(counts[2] + (opt ? 1 : 0), 10);
  if (opt) writeOpt(out, end, opt);
  return out;
}
