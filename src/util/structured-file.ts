// Config, registration and alias files are YAML, or JSON when their name ends in .json
// (YAML would read most JSON too, but JSON's own parser gives JSON's error messages).
// A leaf module: every reader of such a file reads and parses through this one, so each
// is bounded the same way: a file over MAX_DOCUMENT_BYTES is refused before it is read,
// and a document nested deeper than MAX_DOCUMENT_DEPTH is refused after it is parsed (no
// reader of these documents goes that deep, and walking one must not exhaust the stack).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { extname } from 'node:path';
import type { parse } from 'yaml';

/**
 * The YAML parser, loaded on the first YAML document: a process that reads none (a DNS
 * sidecar given JSON, or nothing) never holds it (about 10 MB).
 */
let yamlParse: typeof parse | null = null;
function parseYaml(text: string): unknown {
  yamlParse ??= (createRequire(import.meta.url)('yaml') as { parse: typeof parse }).parse;
  return yamlParse(text);
}

export type StructuredFormat = 'JSON' | 'YAML';

/** The largest config, registration or alias file read: far above any hand-written one. */
export const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;
/** The deepest nesting of maps and lists accepted in such a document. */
export const MAX_DOCUMENT_DEPTH = 32;

export function formatOf(path: string): StructuredFormat {
  return extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML';
}

/** The document in `text`, read as the format `path`'s extension names; throws the parser's error, or one naming the depth. */
export function parseStructured(path: string, text: string): unknown {
  const doc: unknown = formatOf(path) === 'JSON' ? JSON.parse(text) : parseYaml(text);
  if (depthOver(doc, MAX_DOCUMENT_DEPTH)) throw new Error(`nested deeper than ${MAX_DOCUMENT_DEPTH} levels`);
  return doc;
}

/** Whether maps and lists nest deeper than `limit` (walked without recursion). */
function depthOver(doc: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[doc, 0]];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [value, depth] = top;
    if (value === null || typeof value !== 'object') continue;
    if (depth >= limit) return true;
    for (const child of Object.values(value)) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return false;
}

/** A text file's content, refused (with an error naming the size) when it is over `maxBytes`. */
export function readTextFile(path: string, maxBytes = MAX_DOCUMENT_BYTES): string {
  const fd = openSync(path, 'r');
  try {
    const { size } = fstatSync(fd);
    if (size > maxBytes) throw Object.assign(new Error(`${path} is ${size} bytes, over the limit of ${maxBytes}`), { code: 'EFBIG' });
    const bytes = Buffer.allocUnsafe(size);
    let read = 0;
    for (let n = 1; read < size && n > 0; read += n) n = readSync(fd, bytes, read, size - read, read);
    return bytes.toString('utf8', 0, read);
  } finally {
    closeSync(fd);
  }
}

/** A document's mapping (a YAML mapping, a JSON object): not null, not a list. */
export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
