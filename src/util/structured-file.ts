// Config, registration and alias files are YAML, or JSON when their name ends in .json
// (YAML would read most JSON too, but JSON's own parser gives JSON's error messages).
// A leaf module: every reader of such a file parses through this one.
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';

export type StructuredFormat = 'JSON' | 'YAML';

export function formatOf(path: string): StructuredFormat {
  return extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML';
}

/** The document in `text`, read as the format `path`'s extension names; throws the parser's error. */
export function parseStructured(path: string, text: string): unknown {
  return formatOf(path) === 'JSON' ? JSON.parse(text) : parseYaml(text);
}
