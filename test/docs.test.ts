// The docs as a reader meets them: every relative link in README.md, CONTRIBUTING.md and
// docs/*.md leads to a file that exists, and every heading anchor to a heading that exists
// (by GitHub's rule for anchors); README.md stays a front page of at most 300 lines; and no
// text sends a reader to the team's private design document, which a clone does not have;
// and no file is committed with a merge conflict's markers in it.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const README_MAX_LINES = 300;
/** Mentions of the private design document: its file name, or a section of it. */
const PRIVATE_DESIGN = /DESIGN\.md|DESIGN §/;
/** The code whose files must not cite it: all of it (this file names it only to find it). */
const CODE_FOLDERS = ['src', 'bench', 'test'];

function docFiles(): string[] {
  const docs = readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`);
  return ['README.md', 'CONTRIBUTING.md', ...docs];
}

function read(file: string): string {
  return readFileSync(join(ROOT, file), 'utf8');
}

/** The text with fenced code blocks blanked (line numbers kept) and inline code spans removed. */
function prose(markdown: string): string[] {
  let fence: string | null = null;
  return markdown.split('\n').map((line) => {
    const marker = /^\s*(```|~~~)/.exec(line)?.[1] ?? null;
    if (fence !== null) {
      if (marker === fence) fence = null;
      return '';
    }
    if (marker !== null) {
      fence = marker;
      return '';
    }
    return line.replace(/`[^`]*`/g, '');
  });
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  const text = heading
    .replace(/`([^`]*)`/g, '$1')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N} _-]/gu, '').replace(/ /g, '-');
}

/** Every anchor the headings of a markdown text define; a repeated one gets -1, -2, … as on GitHub. */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  let fence: string | null = null;
  for (const line of markdown.split('\n')) {
    const marker = /^\s*(```|~~~)/.exec(line)?.[1] ?? null;
    if (fence !== null) {
      if (marker === fence) fence = null;
      continue;
    }
    if (marker !== null) {
      fence = marker;
      continue;
    }
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const base = anchorOf(heading[1]);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** What is wrong with the relative links of `text`, as if it were the file `file` (relative to the root). */
function linkProblems(file: string, text: string): string[] {
  const problems: string[] = [];
  prose(text).forEach((line, index) => {
    for (const match of line.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = match[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
      const where = `${file}:${index + 1}: ${target}`;
      const hash = target.indexOf('#');
      const path = decodeURIComponent(hash === -1 ? target : target.slice(0, hash));
      const anchor = hash === -1 ? null : decodeURIComponent(target.slice(hash + 1));
      const resolved = path === '' ? file : relative(ROOT, resolve(ROOT, dirname(file), path));
      if (resolved !== file && !existsSync(join(ROOT, resolved))) {
        problems.push(`${where}: no such file`);
        continue;
      }
      if (anchor === null) continue;
      if (!resolved.endsWith('.md') || (resolved !== file && statSync(join(ROOT, resolved)).isDirectory())) {
        problems.push(`${where}: an anchor into a file that is not markdown`);
        continue;
      }
      const source = resolved === file ? text : read(resolved);
      if (!anchorsOf(source).has(anchor)) problems.push(`${where}: no heading with that anchor in ${resolved}`);
    }
  });
  return problems;
}

function filesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

describe('the docs', () => {
  it('link only to files and headings that exist', () => {
    const problems = docFiles().flatMap((file) => linkProblems(file, read(file)));
    expect(problems).toEqual([]);
  });

  it('are checked for real: a missing file, a missing heading in another file and in the same one are each found', () => {
    const text = [
      '# A page',
      '[fine](architecture.md#layout) [fine too](#a-page) [and this](../src/util/README.md)',
      '[gone](no-such-page.md) [wrong heading](architecture.md#no-such-heading) [here](#nowhere)',
      '```',
      '[inside code](no-such-page.md)',
      '```',
    ].join('\n');
    expect(linkProblems('docs/example.md', text)).toEqual([
      'docs/example.md:3: no-such-page.md: no such file',
      'docs/example.md:3: architecture.md#no-such-heading: no heading with that anchor in docs/architecture.md',
      'docs/example.md:3: #nowhere: no heading with that anchor in docs/example.md',
    ]);
    expect(anchorOf('Fleet (`npm run bench:fleet`)')).toBe('fleet-npm-run-benchfleet');
    expect(anchorOf("Running it as the node's resolver")).toBe('running-it-as-the-nodes-resolver');
  });

  it(`keep README.md to at most ${README_MAX_LINES} lines`, () => {
    const lines = read('README.md').replace(/\n$/, '').split('\n').length;
    expect(lines).toBeLessThanOrEqual(README_MAX_LINES);
  });

  it('do not point readers to DESIGN.md or DESIGN §', () => {
    const citing = docFiles().filter((file) => PRIVATE_DESIGN.test(read(file)));
    expect(citing).toEqual([]);
  });

  it('no tracked file holds a merge conflict\'s markers', () => {
    const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter((f) => f && !f.endsWith('.gz'));
    // Written as repetitions so that this file does not match itself.
    const marker = /^(<{7}|>{7}) |^={7}$/m;
    const conflicted = tracked.filter((file) => existsSync(join(ROOT, file)) && statSync(join(ROOT, file)).isFile() && marker.test(read(file)));
    expect(conflicted).toEqual([]);
  });

  it('src/, bench/, test/: no file cites DESIGN.md or DESIGN §', () => {
    const self = relative(ROOT, import.meta.filename);
    const citing = CODE_FOLDERS.flatMap((folder) => filesUnder(folder)).filter((file) => file !== self && PRIVATE_DESIGN.test(read(file)));
    expect(citing).toEqual([]);
  });
});
