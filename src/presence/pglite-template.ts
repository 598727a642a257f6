// A fresh embedded database, made once at build time, so that a node's first start does
// not run PGlite's initdb: initdb takes about 3 s and peaks near 450 MB (the WebAssembly
// PostgreSQL grows its memory and never gives it back), where opening an existing data
// directory takes 0.3 s and about 140 MB. `npm run build` runs this module, which writes
// `dist/pglite-template.tar.gz` (PGlite's own dump of an empty cluster, about 5 MB); the
// embedded database's thread unpacks it into an empty data directory before it opens it.
// Without the template (a build that did not make it) PGlite runs initdb as before.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

/** Where the build writes the template: dist/, beside the compiled modules. */
export const TEMPLATE_PATH = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../../dist/pglite-template.tar.gz' : '../pglite-template.tar.gz', import.meta.url));

/**
 * Unpacks the template into `dir` when `dir` holds no database yet. Returns whether it
 * did; false when there is a database already, or no template (PGlite then runs initdb).
 * The archive is unpacked into `dir/.seeding` and its entries moved up, PG_VERSION last:
 * a start killed halfway leaves no directory that looks like a database, and the next
 * start, finding `.seeding`, clears what it had moved and seeds again. (Moving entries
 * within `dir` rather than renaming `dir` keeps working when `dir` is a mount point.)
 */
export function seedDataDir(dir: string, template = TEMPLATE_PATH): boolean {
  const aside = join(dir, '.seeding');
  if (existsSync(join(dir, 'PG_VERSION'))) {
    rmSync(aside, { recursive: true, force: true });
    return false;
  }
  if (!existsSync(template)) return false;
  mkdirSync(dir, { recursive: true });
  if (existsSync(aside)) for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
  else if (readdirSync(dir).length > 0) return false;
  mkdirSync(aside);
  for (const entry of untar(gunzipSync(readFileSync(template)))) {
    const path = join(aside, normalize(`/${entry.name}`));
    if (entry.directory) mkdirSync(path, { recursive: true });
    else {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, entry.data, { mode: entry.mode });
    }
  }
  const names = readdirSync(aside).sort((a, b) => Number(a === 'PG_VERSION') - Number(b === 'PG_VERSION'));
  for (const name of names) renameSync(join(aside, name), join(dir, name));
  rmSync(aside, { recursive: true, force: true });
  return true;
}

interface TarEntry {
  name: string;
  directory: boolean;
  mode: number;
  data: Buffer;
}

/** The entries of a ustar archive (regular files and directories: what PGlite's dump holds). */
function* untar(archive: Buffer): Generator<TarEntry> {
  const field = (block: Buffer, at: number, length: number) => block.toString('latin1', at, at + length).replace(/\0.*$/s, '');
  for (let at = 0; at + 512 <= archive.length;) {
    const header = archive.subarray(at, at + 512);
    if (header.every((b) => b === 0)) return;
    const name = `${field(header, 345, 155)}${field(header, 0, 100)}`;
    const mode = parseInt(field(header, 100, 8).trim() || '644', 8);
    const size = parseInt(field(header, 124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156]);
    const data = archive.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    if (type === '5') yield { name, directory: true, mode, data };
    else if (type === '0' || type === '\0') yield { name, directory: false, mode, data };
    else throw new Error(`the PGlite template holds a tar entry of type "${type}" (${name}), which is not unpacked here`);
  }
}

/** Makes the template: PGlite's dump of a freshly initialised cluster, with the daemon's settings. */
export async function makeTemplate(out = TEMPLATE_PATH): Promise<void> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { applyPgliteSettings } = await import('./pglite-settings.ts');
  const dir = mkdtempSync(join(tmpdir(), 'pglite-template-'));
  try {
    const db = await PGlite.create(dir, { startParams: applyPgliteSettings() });
    const dump = await db.dumpDataDir('gzip');
    await db.close();
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, Buffer.from(await dump.arrayBuffer()));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await makeTemplate();
