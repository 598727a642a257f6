// The generated configuration reference: config/schema.json (what editors validate config
// files with) and docs/configuration.md are exactly what the config schema generates, and
// every key an operator can set is described there.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configJsonSchema, REFERENCE_FILES, REGENERATE, type JsonSchema } from '../../src/config/reference.ts';

const ROOT = resolve(import.meta.dirname, '../..');

/** Every key of the schema as a dotted path with its schema, list items' keys included. */
function keys(schema: JsonSchema, at = ''): Array<[string, JsonSchema]> {
  const own = Object.entries(schema.properties ?? {}).flatMap(([key, value]): Array<[string, JsonSchema]> => {
    const path = at ? `${at}.${key}` : key;
    return [[path, value], ...keys(value, path)];
  });
  return schema.items ? [...own, ...keys(schema.items, `${at}[]`)] : own;
}

describe('the configuration reference', () => {
  it.each(Object.keys(REFERENCE_FILES))('%s is what the config schema generates', (path) => {
    const committed = readFileSync(join(ROOT, path), 'utf8');
    expect(committed, `${path} differs from what the config schema generates: run \`${REGENERATE}\` and commit it`).toBe(REFERENCE_FILES[path]());
  });

  it('describes every key, so neither an editor nor the docs show a bare name', () => {
    const all = keys(configJsonSchema());
    // The sections and the keys the tests lean on are there: an empty walk cannot pass.
    expect(all.map(([path]) => path)).toEqual(expect.arrayContaining(['dns', 'dns.listen[].port', 'forward.cache.max_entries', 'routes.nats_tls.ca_file', 'log.level']));
    const bare = all.filter(([, schema]) => !schema.description?.trim()).map(([path]) => path);
    expect(bare, 'keys without a .describe() text in their module\'s config.ts').toEqual([]);
  });

  it('refuses unknown keys at every level, as the loader does, so an editor flags a typo', () => {
    const objects = [['(top level)', configJsonSchema()] as [string, JsonSchema], ...keys(configJsonSchema())].filter(([, schema]) => schema.type === 'object');
    expect(objects.length).toBeGreaterThan(12);
    for (const [path, schema] of objects) expect(schema.additionalProperties, path).toBe(false);
  });

  it.each(['config/default.yaml', 'config/container.yaml'])('%s names the schema for the YAML language server', (path) => {
    expect(readFileSync(join(ROOT, path), 'utf8').split('\n')[0]).toBe('# yaml-language-server: $schema=./schema.json');
  });
});
