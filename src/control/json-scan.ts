// Walking a large JSON document without building it: finds the byte range of each member
// of the top-level object, and of each element of an array, so a topology file's rows can
// be parsed one at a time (JSON.parse on each small range validates it). A 600 k-row file
// then never exists as one object graph, whose heap V8 would keep long after the parse.
// The structure between the ranges — braces, brackets, colons, commas — is checked here;
// anything else is JSON.parse's to reject.

export class JsonScanError extends Error {}

/**
 * The deepest nesting of objects and arrays accepted. A topology file nests four deep; a
 * document nested far deeper is rejected before it is parsed, because code that quotes or
 * walks a value (an error message naming it, JSON.stringify) would exhaust the stack.
 */
export const MAX_JSON_DEPTH = 32;

const SPACE = 0x20, TAB = 0x09, LF = 0x0a, CR = 0x0d;
const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a;
const OPEN_OBJECT = 0x7b, CLOSE_OBJECT = 0x7d, OPEN_ARRAY = 0x5b, CLOSE_ARRAY = 0x5d;

export interface Range {
  start: number;
  end: number;
}

function skipSpace(bytes: Uint8Array, pos: number): number {
  while (pos < bytes.length) {
    const c = bytes[pos];
    if (c !== SPACE && c !== TAB && c !== LF && c !== CR) break;
    pos++;
  }
  return pos;
}

function fail(reason: string, pos: number): never {
  throw new JsonScanError(`${reason} at byte ${pos}`);
}

function skipString(bytes: Uint8Array, pos: number): number {
  for (let k = pos + 1; k < bytes.length; k++) {
    const c = bytes[k];
    if (c === BACKSLASH) k++;
    else if (c === QUOTE) return k + 1;
  }
  return fail('unterminated string', pos);
}

/** The end of the value starting at `pos` (containers by bracket depth; JSON.parse checks the inside). */
function skipValue(bytes: Uint8Array, pos: number): number {
  const first = bytes[pos];
  if (first === QUOTE) return skipString(bytes, pos);
  if (first === OPEN_OBJECT || first === OPEN_ARRAY) {
    let depth = 0;
    for (let k = pos; k < bytes.length; k++) {
      const c = bytes[k];
      if (c === QUOTE) k = skipString(bytes, k) - 1;
      else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
        if (++depth > MAX_JSON_DEPTH) fail(`nested deeper than ${MAX_JSON_DEPTH} levels`, k);
      } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
        if (--depth === 0) return k + 1;
      }
    }
    return fail('unterminated object or array', pos);
  }
  let k = pos;
  while (k < bytes.length) {
    const c = bytes[k];
    if (c === COMMA || c === CLOSE_ARRAY || c === CLOSE_OBJECT || c === SPACE || c === TAB || c === LF || c === CR) break;
    k++;
  }
  return k === pos ? fail('a value is missing', pos) : k;
}

/** Whether the JSON text in bytes[start, end) nests objects and arrays deeper than `limit` (strings skipped, nothing parsed). */
export function nestedDeeper(bytes: Uint8Array, start: number, end: number, limit = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  for (let k = start; k < end; k++) {
    const c = bytes[k];
    if (c === QUOTE) {
      for (k++; k < end && bytes[k] !== QUOTE; k++) if (bytes[k] === BACKSLASH) k++;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) depth--;
  }
  return false;
}

/**
 * Calls `member` for each member of the top-level object in `bytes`, with its key and the
 * byte range of its value. Throws JsonScanError if `bytes` is not one object.
 */
export function scanObject(bytes: Uint8Array, member: (key: string, value: Range) => void, text: (r: Range) => string): void {
  let pos = skipSpace(bytes, 0);
  if (bytes[pos] !== OPEN_OBJECT) fail('expected an object', pos);
  pos = skipSpace(bytes, pos + 1);
  if (bytes[pos] === CLOSE_OBJECT) pos++;
  else {
    for (;;) {
      if (bytes[pos] !== QUOTE) fail('expected a member name', pos);
      const keyEnd = skipString(bytes, pos);
      const key = JSON.parse(text({ start: pos, end: keyEnd })) as string;
      pos = skipSpace(bytes, keyEnd);
      if (bytes[pos] !== COLON) fail('expected ":"', pos);
      pos = skipSpace(bytes, pos + 1);
      const end = skipValue(bytes, pos);
      member(key, { start: pos, end });
      pos = skipSpace(bytes, end);
      if (bytes[pos] === COMMA) pos = skipSpace(bytes, pos + 1);
      else if (bytes[pos] === CLOSE_OBJECT) {
        pos++;
        break;
      } else fail('expected "," or "}"', pos);
    }
  }
  if (skipSpace(bytes, pos) !== bytes.length) fail('unexpected data after the object', pos);
}

/** Calls `element` with the byte range of each element of the array at `range`; false if it is not an array. */
export function scanArray(bytes: Uint8Array, range: Range, element: (index: number, value: Range) => void): boolean {
  let pos = range.start;
  if (bytes[pos] !== OPEN_ARRAY) return false;
  pos = skipSpace(bytes, pos + 1);
  if (bytes[pos] === CLOSE_ARRAY) return true;
  for (let index = 0; ; index++) {
    const end = skipValue(bytes, pos);
    element(index, { start: pos, end });
    pos = skipSpace(bytes, end);
    if (bytes[pos] === COMMA) pos = skipSpace(bytes, pos + 1);
    else if (bytes[pos] === CLOSE_ARRAY) return true;
    else fail('expected "," or "]"', pos);
  }
}
