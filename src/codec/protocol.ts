// The numbers of the DNS protocol this daemon speaks (RFC 1035, RFC 6891, RFC 4035):
// record types, response codes, header flag bits and message size limits, the size limit
// of a reply on a transport, and the error every reader throws on bytes that are not a
// DNS message. Every other codec module and both answerers (dns/, forward/) take them
// from here.

export const RRType = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, ANY: 255,
} as const;

export const Rcode = {
  NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16,
} as const;

export const CLASS_IN = 1;
export const HEADER_SIZE = 12;
/** What a UDP client without EDNS can take (RFC 1035 §4.2.1). */
export const MIN_UDP_SIZE = 512;
/** What one TCP message can carry: its length prefix is 16 bits. */
export const TCP_MAX_SIZE = 65535;

/** Bits of the header's flags word (RFC 1035 §4.1.1, RFC 4035 for AD/CD). */
export const Flag = {
  QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080, AD: 0x0020, CD: 0x0010,
} as const;

export type Transport = 'udp' | 'tcp';

/**
 * The largest reply a client can take: 65535 over TCP; over UDP 512 without EDNS, else
 * the size its OPT record advertises (`ednsUdpSize`), clamped to 512 … `ourMax`.
 */
export function replyLimit(transport: Transport, ednsUdpSize: number | null, ourMax: number): number {
  if (transport === 'tcp') return TCP_MAX_SIZE;
  if (ednsUdpSize === null) return MIN_UDP_SIZE;
  return Math.max(MIN_UDP_SIZE, Math.min(ednsUdpSize, ourMax));
}

export function rrTypeName(type: number): string {
  for (const [name, value] of Object.entries(RRType)) if (value === type) return name;
  return `TYPE${type}`;
}

/**
 * Bytes that are not a DNS message, found by a reader (a query from a client, a reply
 * from an upstream); its message says what is wrong, for a FORMERR or a failed upstream.
 */
export class MalformedMessage extends Error {}
