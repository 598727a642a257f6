// The layout docs/architecture.md draws: no folder of src/ imports, through any chain, a
// folder that imports it back (each import runs one way, towards the leaves).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../src');
const IMPORT = /(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g;

/** The part of src/ a path is in: its folder, or the file's own name at the top (main, log, clock). */
function partOf(path: string): string {
  return relative(SRC, path).split('/')[0].replace(/\.ts$/, '');
}

function folderImports(): Map<string, Set<string>> {
  const edges = new Map<string, Set<string>>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) {
        const from = partOf(path);
        for (const match of readFileSync(path, 'utf8').matchAll(IMPORT)) {
          const to = partOf(resolve(dirname(path), match[1]));
          if (to === from) continue;
          const set = edges.get(from) ?? new Set<string>();
          set.add(to);
          edges.set(from, set);
        }
      }
    }
  };
  walk(SRC);
  return edges;
}

/** Every cycle's path, as found by a depth-first walk from each part. */
function cycles(edges: Map<string, Set<string>>): string[] {
  const found: string[] = [];
  const visit = (part: string, path: string[]): void => {
    for (const next of edges.get(part) ?? []) {
      const at = path.indexOf(next);
      if (at >= 0) found.push([...path.slice(at), next].join(' → '));
      else visit(next, [...path, next]);
    }
  };
  for (const part of edges.keys()) visit(part, [part]);
  return found;
}

describe('the layout of src/', () => {
  it('has no import cycle between folders', () => {
    expect(cycles(folderImports())).toEqual([]);
  });

  it('finds the imports it checks (the control plane imports the image and the presence side)', () => {
    const edges = folderImports();
    expect([...edges.get('control') ?? []]).toEqual(expect.arrayContaining(['image', 'presence', 'fanout']));
  });
});
