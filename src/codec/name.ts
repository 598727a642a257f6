// Reading names off the wire (RFC 1035 §3.1, §4.1.4), for every reader of messages: the
// query decoder (text form of the question, pointers refused there; the names of other
// records walked to the end, pointers followed) and the forwarder's reply indexer (only
// where each name ends, stopping at a pointer). One walker for all of them, bounded by the
// message's length and 255 bytes a name, so hostile input cannot blow up memory or time.
import { MalformedMessage } from './protocol.ts';

/** What the walker does at a compression pointer. */
export type Pointers =
  /** A FORMERR: where a pointer is not allowed (the question of a query). */
  | 'refuse'
  /** Jump and walk on, so a bad target or a loop is found. */
  | 'follow'
  /** The name ends there: only its end is wanted (upstream replies, which are not read further). */
  | 'stop';

const MAX_JUMPS = 32;
/** 255 bytes on the wire with the root label's zero: 253 characters in text form. */
const MAX_NAME_BYTES = 255;

/**
 * Walks the name at `start` and returns the offset just past it in the message (past its
 * first pointer when it has one). With `labels`, appends its labels in text form (latin1;
 * a label holding a dot is refused, as the text form could not tell it from a separator).
 */
function walkName(buf: Buffer, start: number, pointers: Pointers, labels: string[] | null): number {
  let offset = start;
  let end = -1;
  let jumps = 0;
  let length = 0;
  for (;;) {
    if (offset >= buf.length) throw new MalformedMessage('name runs past the packet');
    const len = buf[offset];
    if (len === 0) return end < 0 ? offset + 1 : end;
    if ((len & 0xc0) === 0xc0) {
      if (pointers === 'refuse') throw new MalformedMessage('compression pointer in question');
      if (offset + 1 >= buf.length) throw new MalformedMessage('truncated pointer');
      if (end < 0) end = offset + 2;
      if (pointers === 'stop') return end;
      if (++jumps > MAX_JUMPS) throw new MalformedMessage('pointer loop');
      offset = ((len & 0x3f) << 8) | buf[offset + 1];
      continue;
    }
    if (len & 0xc0) throw new MalformedMessage('unknown label type');
    if (offset + 1 + len > buf.length) throw new MalformedMessage('label runs past the packet');
    length += len + 1;
    if (length + 1 > MAX_NAME_BYTES) throw new MalformedMessage(`name longer than ${MAX_NAME_BYTES} bytes`);
    if (labels !== null) {
      const label = buf.toString('latin1', offset + 1, offset + 1 + len);
      if (label.includes('.')) throw new MalformedMessage('label contains a dot');
      labels.push(label);
    }
    offset += 1 + len;
  }
}

/** The name at `start` in text form (no trailing dot, case kept; "" is the root) and where it ends. */
export function readName(buf: Buffer, start: number, pointers: Pointers): { name: string; end: number } {
  const labels: string[] = [];
  const end = walkName(buf, start, pointers, labels);
  return { name: labels.join('.'), end };
}

/** The offset just past the name at `start`. */
export function skipName(buf: Buffer, start: number, pointers: Pointers): number {
  return walkName(buf, start, pointers, null);
}

/** A copy of wire-form name bytes with ASCII letters lower-cased (how names compare: RFC 4343). */
export function lowerCaseName(bytes: Buffer): Buffer {
  const out = Buffer.from(bytes);
  // Label length bytes are at most 63, so they never fall in the 'A'..'Z' range.
  for (let i = 0; i < out.length; i++) if (out[i] >= 0x41 && out[i] <= 0x5a) out[i] |= 0x20;
  return out;
}
