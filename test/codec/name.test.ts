// Reading names off the wire: the text form of a question, and where a name ends in a
// query's records (pointers followed) or in an upstream's reply (stopping at a pointer);
// every malformed name is refused with the reason, whatever the mode.
import { describe, expect, it } from 'vitest';
import { lowerCaseName, readName, skipName } from '../../src/codec/name.ts';
import { MalformedMessage } from '../../src/codec/protocol.ts';
import { encodeName } from '../dns/client.ts';

/** A message of 12 header bytes, then `parts`. */
const message = (...parts: Buffer[]) => Buffer.concat([Buffer.alloc(12), ...parts]);
const pointer = (to: number) => Buffer.from([0xc0 | (to >> 8), to & 0xff]);

describe('reading names', () => {
  it('reads a name in text form with its case, and the root', () => {
    expect(readName(message(encodeName('Web.Default.bosh')), 12, 'refuse')).toEqual({ name: 'Web.Default.bosh', end: 30 });
    expect(readName(message(encodeName('')), 12, 'refuse')).toEqual({ name: '', end: 13 });
  });

  it('follows a pointer for the text and ends the name just past it', () => {
    // "bosh" at 12; "web" + pointer to it at 18.
    const buf = message(encodeName('bosh'), Buffer.from([3, 0x77, 0x65, 0x62]), pointer(12));
    expect(readName(buf, 18, 'follow')).toEqual({ name: 'web.bosh', end: 24 });
    expect(skipName(buf, 18, 'follow')).toBe(24);
    // An upstream's reply: where the name ends is all that is wanted.
    expect(skipName(buf, 18, 'stop')).toBe(24);
  });

  it('stops at a pointer without following it when told to, so its target is not read', () => {
    const buf = message(Buffer.from([1, 0x61]), pointer(0x3fff));
    expect(skipName(buf, 12, 'stop')).toBe(16);
    expect(() => skipName(buf, 12, 'follow')).toThrow('name runs past the packet');
  });

  const loop = message(pointer(12));
  const cases: Array<[string, Buffer, string, Array<'refuse' | 'follow' | 'stop'>]> = [
    ['a pointer where none may be', message(Buffer.from([1, 0x61]), pointer(12)), 'compression pointer in question', ['refuse']],
    ['a pointer loop', loop, 'pointer loop', ['follow']],
    ['a truncated pointer', message(Buffer.from([0xc0])), 'truncated pointer', ['follow', 'stop']],
    ['a reserved label type', message(Buffer.from([0x40, 0])), 'unknown label type', ['refuse', 'follow', 'stop']],
    ['a label running past the end', message(Buffer.from([5, 0x61])), 'label runs past the packet', ['refuse', 'follow', 'stop']],
    ['no end', message(Buffer.from([1, 0x61])), 'name runs past the packet', ['refuse', 'follow', 'stop']],
    ['a name over 255 bytes', message(...Array.from({ length: 5 }, () => encodeName('a'.repeat(63)).subarray(0, 64)), Buffer.from([0])), 'name longer than 255 bytes', ['refuse', 'follow', 'stop']],
  ];
  it.each(cases)('refuses %s', (_what, buf, reason, modes) => {
    for (const mode of modes) {
      expect(() => skipName(buf, 12, mode)).toThrow(MalformedMessage);
      expect(() => skipName(buf, 12, mode)).toThrow(reason);
    }
  });

  it('refuses a label holding a dot only where the text form is wanted', () => {
    const buf = message(Buffer.from([3, 0x61, 0x2e, 0x62, 0]));
    expect(() => readName(buf, 12, 'refuse')).toThrow('label contains a dot');
    expect(skipName(buf, 12, 'stop')).toBe(17);
  });
});

describe('lower-casing wire names', () => {
  it('lower-cases ASCII letters only, never a length byte, in a copy', () => {
    const name = Buffer.concat([encodeName('WwW.Ex-AMPLE.com'), Buffer.from([0xc4])]);
    const lower = lowerCaseName(name);
    expect(lower.equals(Buffer.concat([encodeName('www.ex-ample.com'), Buffer.from([0xc4])]))).toBe(true);
    expect(name[1]).toBe(0x57);
  });
});
