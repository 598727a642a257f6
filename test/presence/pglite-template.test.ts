// The embedded database's first start from the template the build makes: an empty data
// directory is seeded and opens as a database with the daemon's schema applied on top; a
// directory that holds a database, or files that are not ours, is left alone; a seed
// killed halfway is cleared and done again rather than opened half-made.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPgliteSettings } from '../../src/presence/pglite-settings.ts';
import { makeTemplate, seedDataDir } from '../../src/presence/pglite-template.ts';

let root: string;
let template: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'pglite-template-test-'));
  template = join(root, 'template.tar.gz');
  await makeTemplate(template);
}, 60_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

async function tablesOf(dir: string): Promise<number> {
  const db = await PGlite.create(dir, { startParams: applyPgliteSettings() });
  try {
    await db.exec('CREATE TABLE IF NOT EXISTS seen (n int)');
    await db.query('INSERT INTO seen VALUES (1)');
    const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM seen');
    return rows[0].n;
  } finally {
    await db.close();
  }
}

describe('seeding the embedded database from the build-time template', () => {
  it('seeds an empty directory, which then opens as a database and keeps what is written', async () => {
    const dir = join(root, 'fresh');
    expect(seedDataDir(dir, template)).toBe(true);
    expect(existsSync(join(dir, 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(dir, '.seeding'))).toBe(false);
    expect(await tablesOf(dir)).toBe(1);
    // Second start: a database is there, so it is opened as it is, not seeded over.
    expect(seedDataDir(dir, template)).toBe(false);
    expect(await tablesOf(dir)).toBe(2);
  }, 60_000);

  it('leaves a directory holding files of its own alone, and does nothing without a template', () => {
    const dir = join(root, 'foreign');
    mkdirSync(dir);
    writeFileSync(join(dir, 'notes.txt'), 'not a database');
    expect(seedDataDir(dir, template)).toBe(false);
    expect(readdirSync(dir)).toEqual(['notes.txt']);
    expect(seedDataDir(join(root, 'no-template'), join(root, 'missing.tar.gz'))).toBe(false);
  });

  it('clears a seed that stopped halfway (no PG_VERSION yet) and seeds again', async () => {
    const dir = join(root, 'interrupted');
    mkdirSync(join(dir, '.seeding', 'base'), { recursive: true });
    writeFileSync(join(dir, 'postgresql.conf'), 'half-moved');
    expect(seedDataDir(dir, template)).toBe(true);
    expect(existsSync(join(dir, '.seeding'))).toBe(false);
    expect(await tablesOf(dir)).toBe(1);
  }, 60_000);
});
