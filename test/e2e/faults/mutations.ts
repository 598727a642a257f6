// What the scenarios that damage files share, with the readers' unit fuzz tests: seeded
// randomness (so a failure replays from its seed), the ways bytes go bad on a disk or in a
// copy, values of the wrong type, and sealing a journal line as docs/topology-file.md
// documents the format (a CRC-32 of the line's bytes before `,"crc"`), so a test can
// write a line whose checksum holds around any content and reach the checks behind the
// checksum. Pure: no daemon, no files. And the instance the product's writers take, for tests that write
// snapshots and journals with them.
import { crc32 } from 'node:zlib';
import type { Instance } from '../../../src/image/instance.ts';

export interface Random {
  /** An integer in [0, n). */
  int(n: number): number;
  /** An integer in [min, max]. */
  between(min: number, max: number): number;
  pick<T>(list: readonly T[]): T;
  /** True with probability `p`. */
  chance(p: number): boolean;
}

/** xorshift32, seeded: the same seed gives the same sequence on every run. */
export function prng(seed: number): Random {
  let x = seed | 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const int = (n: number) => next() % n;
  return {
    int,
    between: (min, max) => min + int(max - min + 1),
    pick: (list) => list[int(list.length)],
    chance: (p) => next() / 0x1_0000_0000 < p,
  };
}

/** `bytes` with `count` bytes in [from, to) XORed with a random non-zero value: each of them certainly changed. */
export function flipBytes(bytes: Uint8Array, count: number, random: Random, from = 0, to = bytes.length): Buffer {
  const out = Buffer.from(bytes);
  for (let k = 0; k < count; k++) out[from + random.int(to - from)] ^= random.between(1, 255);
  return out;
}

/** `bytes` with the range [start, start + length) set to zero (which may change nothing where they were zero already). */
export function zeroRange(bytes: Uint8Array, start: number, length: number): Buffer {
  const out = Buffer.from(bytes);
  out.fill(0, start, Math.min(out.length, start + length));
  return out;
}

/** `count` random bytes. */
export function randomBytes(count: number, random: Random): Buffer {
  return Buffer.from(Array.from({ length: count }, () => random.int(256)));
}

/** A JSON object's text sealed as a journal line: its members, then `"crc"` over the bytes before it, and a newline. */
export function sealedText(objectText: string): string {
  const body = objectText.slice(0, -1);
  return `${body},"crc":"${crc32(body).toString(16).padStart(8, '0')}"}\n`;
}

export const sealed = (object: Record<string, unknown>): string => sealedText(JSON.stringify(object));

/** `[[[…]]]` nested `depth` deep: deeper than any recursive walk of a value survives. */
export function deepList(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

/** A value that stands, in a document built with JSON.stringify, for a list nested 100,000 deep (no stringify survives the real one). */
export const DEEP = '@@nested 100,000 deep@@';

/** The JSON text with every DEEP put in as the list nested 100,000 deep. */
export function deepened(json: string): string {
  return json.replaceAll(JSON.stringify(DEEP), deepList(100_000));
}

/** Values no reader should take for a name, an address, a number or a list. */
export const WRONG_VALUES: readonly unknown[] = [
  null, 7, -1, -1.5, 1e308, 2 ** 53 + 2, true, false, {}, [], ['x'], { a: 1 }, '', 'not-an-ip', '999.1.1.1',
  'ünïcödé', '\u{1F4A9}', '\ud800', 'a'.repeat(300), '0x10',
];

/** An IPv4 instance in network `default` of deployment `cf` under `bosh`, as the syncer's writers take it. */
export function instance(id: string, group: string, ip: string, index: number | null = null): Instance {
  return {
    id, numId: null, group, groupIds: [], network: 'default', networkId: null, deployment: 'cf', az: null, azId: null,
    index, ip, family: 4, domain: 'bosh', agentId: null, cellId: null, health: null, ports: {},
  };
}
