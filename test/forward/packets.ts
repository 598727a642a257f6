// Builds client queries and reads the forwarder's replies byte by byte, so unit tests
// assert on exactly what a client would receive (TTLs, TC, EDE) without a socket.
import { decodeQuery, HEADER_SIZE, RRType, type DecodedQuery } from '../../src/codec/index.ts';

export interface QueryOptions {
  id?: number;
  type?: number;
  /** EDNS with this UDP size (default 1232); null for a plain query. */
  udpSize?: number | null;
}

export function makeQuery(name: string, options: QueryOptions = {}): { packet: Buffer; query: DecodedQuery } {
  const labels = name.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')]));
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt16BE(options.id ?? 0x1234, 0);
  header.writeUInt16BE(0x0100, 2);
  header.writeUInt16BE(1, 4);
  const udpSize = options.udpSize === undefined ? 1232 : options.udpSize;
  header.writeUInt16BE(udpSize === null ? 0 : 1, 10);
  const question = Buffer.alloc(4);
  question.writeUInt16BE(options.type ?? RRType.A, 0);
  question.writeUInt16BE(1, 2);
  const opt = Buffer.alloc(udpSize === null ? 0 : 11);
  if (udpSize !== null) {
    opt.writeUInt16BE(RRType.OPT, 1);
    opt.writeUInt16BE(udpSize, 3);
  }
  const packet = Buffer.concat([header, ...labels, Buffer.from([0]), question, opt]);
  const decoded = decodeQuery(packet);
  if (!decoded.ok) throw new Error(decoded.reason);
  return { packet, query: decoded.query };
}

export interface ReadRecord {
  type: number;
  ttl: number;
  rdata: Buffer;
}

export interface ReadReply {
  id: number;
  rcode: number;
  truncated: boolean;
  recursionAvailable: boolean;
  question: string;
  answers: ReadRecord[];
  authority: ReadRecord[];
  additional: ReadRecord[];
  /** Extended DNS Error info codes in the OPT record (RFC 8914). */
  ede: number[];
  addresses: string[];
}

function skipName(buf: Buffer, at: number): number {
  for (;;) {
    const len = buf[at];
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) return at + 2;
    at += 1 + len;
  }
}

export function readReply(buf: Buffer): ReadReply {
  const flags = buf.readUInt16BE(2);
  const questionEnd = skipName(buf, HEADER_SIZE);
  const labels: string[] = [];
  for (let at = HEADER_SIZE; buf[at] !== 0; at += 1 + buf[at]) labels.push(buf.toString('latin1', at + 1, at + 1 + buf[at]));
  const reply: ReadReply = {
    id: buf.readUInt16BE(0), rcode: flags & 0x0f, truncated: (flags & 0x0200) !== 0, recursionAvailable: (flags & 0x0080) !== 0,
    question: labels.join('.'), answers: [], authority: [], additional: [], ede: [], addresses: [],
  };
  let at = questionEnd + 4;
  const sections = [reply.answers, reply.authority, reply.additional];
  for (let s = 0; s < 3; s++) {
    const count = buf.readUInt16BE(6 + s * 2);
    for (let i = 0; i < count; i++) {
      const nameEnd = skipName(buf, at);
      const type = buf.readUInt16BE(nameEnd);
      const rdStart = nameEnd + 10;
      const rdata = buf.subarray(rdStart, rdStart + buf.readUInt16BE(nameEnd + 8));
      at = rdStart + rdata.length;
      if (type === RRType.OPT) {
        for (let o = 0; o + 4 <= rdata.length; o += 4 + rdata.readUInt16BE(o + 2)) {
          if (rdata.readUInt16BE(o) === 15) reply.ede.push(rdata.readUInt16BE(o + 4));
        }
        continue;
      }
      sections[s].push({ type, ttl: buf.readUInt32BE(nameEnd + 4), rdata });
      if (s === 0 && type === RRType.A) reply.addresses.push([...rdata].join('.'));
    }
  }
  if (at !== buf.length) throw new Error(`reply has ${buf.length - at} trailing bytes`);
  return reply;
}
