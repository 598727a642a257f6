// No reader of what is on disk lets an exception escape, on any input: seeded random and
// mutated inputs — bytes flipped, files cut, values of the wrong type, lists nested
// 100,000 deep, huge and odd numbers, unicode — fed to the topology file reader
// (readTopology), the journal reader (readJournal), the image cache reader (readImageCache,
// through files), the alias file readers (parseStructured + readAliases) and the
// registration file reader (parseRegistrationFile). Each returns a result, or throws only
// the error it documents: parseStructured its parser's error or one naming the nesting
// depth, parseRegistrationFile a RegistrationError; the others never throw. A TypeError,
// RangeError or stack overflow out of any of them is a bug the daemon would meet as a read
// that fails "unexpectedly" instead of an input it reports.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { stringify as yamlText, YAMLError } from 'yaml';
import { RegistrationError, parseRegistrationFile } from '../../src/registrations/validate.ts';
import { compileImage } from '../../src/image/builder.ts';
import { imageCachePath, readImageCache } from '../../src/image/cache.ts';
import { journalHeaderLine, journalLine, readJournal, type JournalCursor } from '../../src/control/journal.ts';
import { readAliases, readTopology } from '../../src/control/reader.ts';
import { OwnedFile, TopologyState } from '../../src/control/state.ts';
import { RECORD_KEYS } from '../../src/image/instance.ts';
import { recordRow } from '../../src/control/snapshot.ts';
import { errorMessage } from '../../src/util/error-message.ts';
import { parseStructured } from '../../src/util/structured-file.ts';
import { DEEP, deepened, deepList, flipBytes, instance, prng, randomBytes, sealedText, WRONG_VALUES, type Random } from '../e2e/faults/mutations.ts';
import { tempDir } from '../helpers/daemon.ts';
import { silentLogger, unposted } from '../presence/fixtures.ts';

const ROUNDS = 600;

/** What an input did to a reader that may not throw it: the exception's class and message (null: the contract held). */
function escaped(read: () => unknown, allowed: (err: unknown) => boolean = () => false): string | null {
  try {
    read();
    return null;
  } catch (err) {
    if (allowed(err)) return null;
    const kind = err instanceof Error ? err.constructor.name : typeof err;
    return `${kind}: ${errorMessage(err).slice(0, 160)}`;
  }
}

/** JSON.stringify's text, typed as it runs: undefined for undefined (a value JSON has no text for). */
function jsonText(value: unknown): string | undefined {
  return JSON.stringify(value);
}

function ignoreRow(): void {
  // The readers are fuzzed for what they throw; the rows they hand over are not kept.
}

/** The inputs (described) that broke `read`'s contract, and how; [] when none did. */
function broken<T>(inputs: Iterable<[string, T]>, read: (input: T) => unknown, allowed?: (err: unknown) => boolean): string[] {
  const out: string[] = [];
  for (const [what, input] of inputs) {
    const how = escaped(() => read(input), allowed);
    if (how) out.push(`${what} → ${how}`);
  }
  return out;
}

// ---- Random values, of every type a parser can give ----

const NUMBERS = [0, -0, 1, -1, 1.5, 7, 65535, 65536, 2 ** 31, 2 ** 53, 2 ** 53 + 2, 1e308, -1e308, 5e-324];
const STRINGS = [
  '', ' ', 'a', 'A.B.', 'web', 'bosh', 'bosh.', '10.0.0.1', '::1', 'fe80::1%eth0', 'running', 'q-s0', '*', '_', '.', 'a..b',
  'ünïcödé', '\u{1F4A9}', '\ud800', '\u0000', '\u202e', 'İ', '\u212a', 'a'.repeat(64), `${'abcdefghij.'.repeat(25)}bosh`,
  'constructor', '__proto__', 'toString', 'hasOwnProperty',
];
const KEYS = ['id', 'group', 'ip', 'x', 'group_id', 'root_domain', 'health_filter', 'placeholder_type', '__proto__', 'constructor', 'ünï', ''];

function randomValue(random: Random, depth = 0): unknown {
  switch (random.int(depth > 2 ? 5 : 8)) {
    case 0: return null;
    case 1: return random.pick(NUMBERS);
    case 2: return random.pick(STRINGS);
    case 3: return random.chance(0.5);
    case 4: return random.chance(0.1) ? DEEP : random.pick(WRONG_VALUES);
    case 5: return Array.from({ length: random.int(4) }, () => randomValue(random, depth + 1));
    case 6: return Object.fromEntries(Array.from({ length: random.int(4) }, () => [random.pick(KEYS), randomValue(random, depth + 1)]));
    default: return `${random.pick(STRINGS)}.${random.pick(STRINGS)}`;
  }
}

/** Byte damage to a text: bytes flipped (to anything, so not always UTF-8 after), cut, random bytes put in, or a range repeated. */
function damage(text: string, random: Random): Buffer {
  const bytes = Buffer.from(text);
  if (bytes.length === 0) return randomBytes(random.int(16), random);
  switch (random.int(4)) {
    case 0: return flipBytes(bytes, random.between(1, 6), random);
    case 1: return bytes.subarray(0, random.int(bytes.length));
    case 2: {
      const at = random.int(bytes.length);
      return Buffer.concat([bytes.subarray(0, at), randomBytes(random.between(1, 16), random), bytes.subarray(at)]);
    }
    default: {
      const from = random.int(bytes.length);
      const to = from + random.int(bytes.length - from);
      return Buffer.concat([bytes.subarray(0, to), bytes.subarray(from)]);
    }
  }
}

// ---- Topology files ----

const ROWS = [instance('a', 'web', '10.0.0.1', 0), instance('b', 'db', 'fd00::2', 1)].map(recordRow);

/** What a value is, in a failure message: short, and DEEP by name. */
const shown = (value: unknown) => (value === DEEP ? 'a list nested 100,000 deep' : jsonText(value)?.slice(0, 60) ?? String(value));

/** A good topology document with one to three random changes, and what they were. */
function topologyDocument(random: Random): { doc: Record<string, unknown>; changes: string[] } {
  const doc: Record<string, unknown> = {
    version: 3,
    record_keys: [...RECORD_KEYS],
    record_infos: ROWS.map((row) => [...row]),
    aliases: { 'web.service.internal': ['*.web.default.cf.bosh', { group_id: 1, root_domain: 'bosh', health_filter: 'healthy' }] },
    records: [['10.0.0.1', 'a.web.default.cf.bosh']],
  };
  const changes: string[] = [];
  const set = (where: string, value: unknown) => {
    changes.push(`${where} = ${shown(value)}`);
    return value;
  };
  const list = (value: unknown, fallback: unknown[]): unknown[] => (Array.isArray(value) && value.length ? value : [...fallback]);
  for (let n = random.between(1, 3); n > 0; n--) {
    switch (random.int(7)) {
      case 0: {
        const member = random.pick(['version', 'record_keys', 'record_infos', 'aliases', 'records', 'source', 'cluster']);
        doc[member] = set(member, randomValue(random));
        break;
      }
      case 1: {
        const rows = list(doc.record_infos, ROWS);
        const k = random.int(rows.length);
        doc.record_infos = rows.with(k, set(`record_infos[${k}]`, randomValue(random)));
        break;
      }
      case 2: {
        const row = list(list(doc.record_infos, ROWS)[0], ROWS[0]);
        const k = random.int(row.length);
        doc.record_infos = [row.with(k, set(`record_infos[0][${k}]`, randomValue(random))), ROWS[1]];
        break;
      }
      case 3: {
        const keys = list(doc.record_keys, [...RECORD_KEYS]);
        const k = random.int(keys.length);
        doc.record_keys = keys.with(k, set(`record_keys[${k}]`, randomValue(random)));
        break;
      }
      case 4: {
        const name = random.pick(STRINGS);
        doc.aliases = { [name]: set(`aliases[${JSON.stringify(name)}]`, randomValue(random)), 'web.service.internal': ['*.web.default.cf.bosh'] };
        break;
      }
      case 5:
        doc.aliases = { 'web.service.internal': [set('aliases.web.service.internal[0]', { group_id: randomValue(random), root_domain: randomValue(random), health_filter: randomValue(random), placeholder_type: randomValue(random) })] };
        break;
      default:
        doc.records = set('records', [randomValue(random), [randomValue(random), randomValue(random)]]);
    }
  }
  return { doc, changes };
}

function* topologyInputs(random: Random): Generator<[string, Buffer]> {
  for (const text of ['', ' ', '{}', '[]', 'null', '"x"', '{"record_keys":[]}', '\ufeff{}', deepList(100_000), `{"a":${deepList(100_000)}}`]) {
    yield [`the text ${JSON.stringify(text.slice(0, 30))}`, Buffer.from(text)];
  }
  for (let k = 0; k < ROUNDS; k++) {
    const { doc, changes } = topologyDocument(random);
    const text = deepened(JSON.stringify(doc));
    yield random.chance(0.3) ? [`topology ${k} (${changes.join('; ')}), its bytes damaged`, damage(text, random)] : [`topology ${k} (${changes.join('; ')})`, Buffer.from(text)];
  }
}

// ---- Journals ----

const CLUSTER = 'c1';
const ENTRY = { version: 4, removes: ['a.web.default.cf.bosh'], adds: [instance('c', 'web', '10.0.0.3', 2)] };

function randomLine(n: number, random: Random): string {
  const members = (): Record<string, unknown> => ({ n, v: 4 + n, rm: [], add: [recordRow(instance('d', 'web', '10.0.0.4'))] });
  switch (random.int(6)) {
    case 0: return journalLine(n, { ...ENTRY, version: 3 + n });
    case 1: {
      const line = members();
      line[random.pick(['n', 'v', 'rm', 'add', 'x'])] = random.chance(0.2) ? DEEP : randomValue(random);
      return sealedText(deepened(JSON.stringify(line)));
    }
    case 2: {
      const line = members();
      (line.add as unknown[][])[0][random.int(RECORD_KEYS.length)] = random.chance(0.2) ? DEEP : randomValue(random);
      return sealedText(deepened(JSON.stringify(line)));
    }
    case 3: return `${deepened(jsonText(randomValue(random)) ?? 'undefined')}\n`;
    case 4: return damage(journalLine(n, ENTRY), random).toString('latin1');
    default: return sealedText(deepened(JSON.stringify({ ...members(), [random.pick(KEYS)]: randomValue(random) })));
  }
}

function* journalInputs(random: Random): Generator<[string, { bytes: Buffer; cursor: JournalCursor | null }]> {
  const headers = () => [
    journalHeaderLine(3, CLUSTER),
    '{"journal":1,"base":3,"cluster":"c1"}\n',
    sealedText(deepened(JSON.stringify({ journal: random.chance(0.5) ? 2 : randomValue(random), base: randomValue(random), cluster: randomValue(random) }))),
    `${deepened(jsonText(randomValue(random)) ?? 'null')}\n`,
  ];
  for (let k = 0; k < ROUNDS; k++) {
    const lines = [random.pick(headers()), ...Array.from({ length: random.int(4) }, (_, n) => randomLine(n + 1, random))];
    let bytes: Buffer = Buffer.from(lines.join(''));
    if (random.chance(0.2)) bytes = damage(bytes.toString('latin1'), random);
    const text = bytes.toString('latin1').replaceAll(deepList(100_000), '<a list nested 100,000 deep>');
    yield [`journal ${k}: ${JSON.stringify(text.length > 400 ? `${text.slice(0, 400)}…` : text)}`, { bytes, cursor: null }];
    // The same lines read on from a cursor, as a reader following the journal reads them.
    const cursor: JournalCursor = { header: { format: random.chance(0.5) ? 2 : 1, base: 3, cluster: CLUSTER }, n: random.int(3), version: 3 };
    yield [`journal ${k}'s lines, read on from ${JSON.stringify(cursor)}`, { bytes: Buffer.from(lines.slice(1).join('')), cursor }];
  }
}

// ---- Image caches ----

/** A syncing node's snapshot and cached image, written by the product (as state.test.ts's writer does). */
function cachedSnapshot(): { dir: string; file: string; image: Buffer } {
  const dir = tempDir();
  const file = join(dir, 'topology.json');
  const state = new TopologyState({ domains: [], post: unposted, logger: silentLogger });
  const owned = new OwnedFile(file, CLUSTER, silentLogger, state.counts);
  state.own(owned);
  const instances = Array.from({ length: 30 }, (_, k) => instance(`n${k}`, `g${k % 3}`, `10.1.0.${k + 1}`, k));
  state.replace(compileImage({ version: 5, instances, aliases: new Map(), ptrRecords: null, generatedAt: null, source: null, cluster: null }));
  owned.close();
  return { dir, file, image: readFileSync(imageCachePath(file)) };
}

/** A cache with its header's CRC made right again over whatever it holds: it passes the checksum, and the image inside is read. */
function resealed(cache: Buffer): Buffer {
  const out = Buffer.from(cache);
  if (out.length >= 32) out.writeUInt32LE(crc32(out.subarray(32), crc32(out.subarray(0, 28))), 28);
  return out;
}

function* cacheInputs(random: Random, good: Buffer): Generator<[string, Buffer]> {
  for (let k = 0; k < ROUNDS / 2; k++) {
    const header = Buffer.from(good.subarray(0, 32));
    switch (random.int(6)) {
      case 0:
        yield [`cache ${k}: flipped`, flipBytes(good, random.between(1, 8), random)];
        break;
      case 1:
        yield [`cache ${k}: cut`, good.subarray(0, random.int(good.length))];
        break;
      case 2:
        yield [`cache ${k}: random`, randomBytes(random.int(200), random)];
        break;
      case 3: {
        // A header field set to anything, the rest as it was.
        const at = random.pick([4, 8, 12, 16, 20, 24]);
        header.writeUInt32LE(random.pick([0, 1, 2, 3, 0xffffffff, random.int(0x1_0000_0000)]), at);
        yield [`cache ${k}: header word at ${at} set`, Buffer.concat([header, good.subarray(32)])];
        break;
      }
      case 4:
        yield [`cache ${k}: resealed after flips in the image`, resealed(flipBytes(good, random.between(1, 20), random, 32))];
        break;
      default: {
        // Garbage of any length behind a header that states its length: the checksum holds over it.
        const image = randomBytes(random.int(400), random);
        header.writeBigUInt64LE(BigInt(image.length), 16);
        yield [`cache ${k}: resealed garbage of ${image.length} bytes`, resealed(Buffer.concat([header, image]))];
      }
    }
  }
}

// ---- Alias and registration files ----

const YAML_TEXTS = [
  deepList(100_000), '{a: '.repeat(10_000) + '1' + '}'.repeat(10_000), `${Array.from({ length: 3000 }, (_, k) => `${' '.repeat(k)}- `).join('\n')}x`,
  'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n',
  '&a [*a]', 'a: &a {b: *a}', '!!binary aGVsbG8=', 'a: !!set {x, y}', 'a: !!omap [x: 1]', '? [a, b]\n: [x.y]', '? {a: b}\n: [x.y]',
  '<<: {a: [x.y]}', 'a: 1\n---\nb: 2', '%YAML 1.1\n---\na: 0x10', 'a: 1e400', 'a: .nan', 'a: !!int "x"', 'a: !!float "x"', 'a: !custom x', '\t- x', '"\\ud800": [x]',
  'x.y: [{group_id: [[[1]]], root_domain: {a: b}}]', 'x.y: [{group_id: 1, root_domain: bosh, health_filter: constructor, placeholder_type: uuid}]',
];

const REGISTRATION = {
  id: 'web-0', group: 'web', network: 'default', deployment: 'cf', ip: '10.0.0.1', ports: { http: 8080 },
  routes: ['web.example.com', { hostname: 'api.example.com', port: 8080 }], tags: { app: 'x' },
  checks: [{ http: 'http://127.0.0.1:8080/health', interval: '5s' }, { tcp: '127.0.0.1:8080' }, { args: ['true'] }],
};

function registrationDocument(random: Random): unknown {
  const entry: Record<string, unknown> = structuredClone(REGISTRATION);
  for (let changes = random.between(1, 3); changes > 0; changes--) {
    const field = random.pick([...Object.keys(REGISTRATION), 'index', 'num_id', 'group_ids', 'az', 'health', 'check', 'app', random.pick(KEYS)]);
    if (random.chance(0.3) && Array.isArray(entry[field])) (entry[field] as unknown[])[0] = randomValue(random);
    else if (random.chance(0.3) && field === 'checks') entry.checks = [Object.fromEntries(Object.entries({ http: 'http://x:1/', interval: '1s', timeout: '1s', rise: 1, fall: 1, status: 200 }).map(([k, v]) => [k, random.chance(0.5) ? randomValue(random) : v]))];
    else entry[field] = randomValue(random);
  }
  return random.chance(0.1) ? randomValue(random) : { instances: random.chance(0.1) ? randomValue(random) : [entry] };
}

/** A structured document as the text of a `.json` or `.yaml` file (a list nested deep put in for DEEP). */
function structuredText(doc: unknown, random: Random): [string, string] {
  if (random.chance(0.5)) return ['x.json', deepened(jsonText(doc) ?? 'null')];
  // yaml quotes the stand-in (it starts with @): the quotes go with it. yaml's parser gives up
  // near 1,000 levels and takes half a second over 100,000: random YAML nests 5,000 deep (the
  // fixed texts above have one 100,000 deep).
  return ['x.yaml', yamlText(doc).replaceAll(new RegExp(`["']?${DEEP}["']?`, 'g'), deepList(5_000))];
}

function* structuredInputs(random: Random, document: (random: Random) => unknown): Generator<[string, [string, string]]> {
  for (const text of YAML_TEXTS) yield [`YAML ${JSON.stringify(text.slice(0, 60))}`, ['x.yaml', text]];
  for (const text of ['', '{', deepList(100_000), '{"a":1}{', '{"__proto__":{"x.y":["a.b"]}}']) yield [`JSON ${JSON.stringify(text.slice(0, 60))}`, ['x.json', text]];
  for (let k = 0; k < ROUNDS; k++) {
    const [path, text] = structuredText(document(random), random);
    const input = random.chance(0.3) ? damage(text, random).toString('utf8') : text;
    yield [`${path} ${k}: ${JSON.stringify(input.slice(0, 200))}`, [path, input]];
  }
}

const aliasDocument = (random: Random): unknown => (random.chance(0.2)
  ? randomValue(random)
  : Object.fromEntries(Array.from({ length: random.between(1, 3) }, () => [random.chance(0.5) ? random.pick(STRINGS) : `${random.pick(STRINGS)}.service.internal`, randomValue(random)])));

/** What parseStructured may throw: its parser's error (JSON's SyntaxError, a YAMLError, yaml's refusal of an alias bomb), or its own naming the depth. */
function parserError(err: unknown): boolean {
  return err instanceof SyntaxError || err instanceof YAMLError
    || (err instanceof ReferenceError && err.message.includes('resource exhaustion'))
    || (err instanceof Error && err.constructor === Error && /^nested deeper than \d+ levels$/.test(err.message));
}

describe('no reader lets an exception escape', () => {
  // yaml warns through process.emitWarning about tags it does not know: expected here, and noise in the output.
  beforeEach(() => {
    vi.spyOn(process, 'emitWarning').mockReturnValue(undefined);
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('readTopology: any bytes give a topology or a rejection, never an exception', () => {
    expect(broken(topologyInputs(prng(0x7f1e)), (bytes) => readTopology(bytes, ignoreRow))).toEqual([]);
  });

  it('readJournal: any bytes, from the start or from a cursor, give lines read up to an error, never an exception', () => {
    expect(broken(journalInputs(prng(0x70a1)), ({ bytes, cursor }) => readJournal(bytes, cursor))).toEqual([]);
  });

  it('readImageCache: any cache file gives an image, none or corrupt, never an exception; a changed cache that fails its checksum is never an image', () => {
    const { dir, file, image } = cachedSnapshot();
    try {
      expect(readImageCache(file).kind).toBe('image');
      const served: string[] = [];
      const failures = broken(cacheInputs(prng(0x1ca4e), image), (bytes) => {
        writeFileSync(imageCachePath(file), bytes);
        const read = readImageCache(file);
        if (read.kind === 'image' && !bytes.equals(image) && crc32(bytes.subarray(32), crc32(bytes.subarray(0, 28))) !== bytes.readUInt32LE(28)) served.push(`${bytes.length} bytes`);
      });
      expect(failures).toEqual([]);
      expect(served).toEqual([]);
      // No cache, a cache that is a directory, a snapshot that is not ours: nothing to serve.
      rmSync(imageCachePath(file));
      expect(readImageCache(file).kind).toBe('none');
      mkdirSync(imageCachePath(file));
      expect(readImageCache(file)).toMatchObject({ kind: 'corrupt' });
      writeFileSync(file, '{"version":99999999999999999999999,"source":"presence-dns sync","cluster":"c1",');
      expect(escaped(() => readImageCache(file))).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('alias files: parseStructured gives a document or its parser\'s error, and readAliases takes any document without an exception', () => {
    const failures = broken(structuredInputs(prng(0xa11a5), aliasDocument), ([path, text]) => {
      let doc: unknown;
      try {
        doc = parseStructured(path, text);
      } catch (err) {
        if (parserError(err)) return;
        throw err;
      }
      readAliases(doc, []);
    });
    expect(failures).toEqual([]);
  });

  it('registration files: parseRegistrationFile gives registrations or a RegistrationError, nothing else', () => {
    expect(broken(structuredInputs(prng(0x4e915), registrationDocument), ([path, text]) => parseRegistrationFile(path, text), (err) => err instanceof RegistrationError)).toEqual([]);
  });
});

/**
 * Lists nested 100,000 deep where a reader puts the value into its message (JSON.stringify,
 * String) or walks it: each must be a rejection like any other bad value, not a RangeError
 * out of the reader. Found by the fuzzing above; one case per place.
 */
describe('a value nested 100,000 deep, where a reader quotes it', () => {
  const KEYS_JSON = JSON.stringify(['id', 'instance_group', 'network', 'deployment', 'ip', 'domain']);
  const topology: Array<[string, string]> = [
    ['the version', `{"version":${deepList(100_000)},"record_keys":${KEYS_JSON},"record_infos":[]}`],
    ["a row's ip", `{"record_keys":${KEYS_JSON},"record_infos":[["a","web","default","cf",${deepList(100_000)},"bosh"]]}`],
    ["an alias's target", `{"record_keys":${KEYS_JSON},"record_infos":[],"aliases":{"a.b":[${deepList(100_000)}]}}`],
    ["an alias's group_id", `{"record_keys":${KEYS_JSON},"record_infos":[],"aliases":{"a.b":[{"group_id":${deepList(100_000)},"root_domain":"bosh"}]}}`],
    ["an alias's root_domain", `{"record_keys":${KEYS_JSON},"record_infos":[],"aliases":{"a.b":[{"group_id":1,"root_domain":${deepList(100_000)}}]}}`],
    ["an alias's health_filter", `{"record_keys":${KEYS_JSON},"record_infos":[],"aliases":{"a.b":[{"group_id":1,"root_domain":"bosh","health_filter":${deepList(100_000)}}]}}`],
    ['a records pair', `{"record_keys":${KEYS_JSON},"record_infos":[],"records":[${deepList(100_000)}]}`],
  ];
  for (const [where, text] of topology) {
    it(`readTopology: in ${where}`, () => {
      expect(escaped(() => readTopology(Buffer.from(text), ignoreRow))).toBeNull();
    });
  }

  const row = JSON.stringify(recordRow(instance('d', 'web', '10.0.0.4'))).replace('"10.0.0.4"', deepList(100_000));
  const journal: Array<[string, string]> = [
    ["the header's format", sealedText(`{"journal":${deepList(100_000)},"base":3,"cluster":"c1"}`)],
    ["a line's number", journalHeaderLine(3, CLUSTER) + sealedText(`{"n":${deepList(100_000)},"v":4,"rm":[],"add":[]}`)],
    ["a row's ip", journalHeaderLine(3, CLUSTER) + sealedText(`{"n":1,"v":4,"rm":[],"add":[${row}]}`)],
  ];
  for (const [where, text] of journal) {
    it(`readJournal: in ${where}`, () => {
      expect(escaped(() => readJournal(Buffer.from(text), null))).toBeNull();
    });
  }
});

describe('readImageCache, when the snapshot cannot be read', () => {
  it('a snapshot path that is a directory: no cache to serve, not an exception', () => {
    const file = join(tempDir(), 'topology.json');
    mkdirSync(file);
    expect(escaped(() => readImageCache(file))).toBeNull();
  });
});
