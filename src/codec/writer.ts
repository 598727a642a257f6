// Writing a message: a buffer of fixed capacity (the transport's size limit) that fills
// from the front and throws MessageFull instead of growing, and names written with RFC
// 1035 §4.1.4 compression. A name or address the wire format cannot carry is refused
// with an UnencodableError before anything of it is written.
import { nameProblem } from '../util/dns-name.ts';

/** The next write would pass the capacity: the record being written does not fit. */
export class MessageFull extends Error {}

/**
 * A value the wire format cannot carry (a bad name or address). Thrown before anything
 * is written, so a caller never sends a malformed message; it is a bug upstream (the
 * topology reader lets no such value through), answered SERVFAIL by the server.
 */
export class UnencodableError extends Error {}

/** Pointers are 14 bits: a name written past this offset cannot be pointed at. */
const MAX_POINTER = 0x3fff;

export class MessageWriter {
  readonly buf: Buffer;
  offset = 0;
  /** Where each name suffix written so far starts, lower-cased (names compare case-insensitively). */
  private readonly names = new Map<string, number>();

  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(capacity);
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

  /** Writes a name (text form, "" the root), pointing at an earlier copy of any suffix. */
  name(name: string): void {
    const problem = nameProblem(name);
    if (problem) throw new UnencodableError(`cannot encode the name ${JSON.stringify(name)}: it ${problem}`);
    const lower = name.toLowerCase();
    for (let start = 0; start < name.length;) {
      const suffix = start === 0 ? lower : lower.slice(start);
      const pointer = this.names.get(suffix);
      if (pointer !== undefined) {
        this.u16(0xc000 | pointer);
        return;
      }
      if (this.offset < MAX_POINTER) this.names.set(suffix, this.offset);
      const dot = name.indexOf('.', start);
      const end = dot < 0 ? name.length : dot;
      this.need(1 + end - start);
      const { buf } = this;
      buf[this.offset++] = end - start;
      // One byte per character: nameProblem refused anything wider.
      for (let i = start; i < end; i++) buf[this.offset++] = name.charCodeAt(i);
      start = end + 1;
    }
    this.u8(0);
  }

  private need(n: number): void {
    if (this.offset + n > this.buf.length) throw new MessageFull();
  }
}
