// The journal's line format and its strict reader: every line is checked (checksum, line
// number, shape, types) before it is applied; the first complete line that fails stops the
// reading and names itself, with everything before it kept; only an incomplete last line
// is a torn append to wait on.
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { journalHeaderLine, journalLine, readJournal, type JournalEntry } from '../../src/control/journal.ts';
import { parseTopology } from '../../src/control/reader.ts';
import type { Instance } from '../../src/image/instance.ts';
import { required } from '../helpers/required.ts';
import { topologyJson } from '../helpers/topology.ts';

const CLUSTER = 'c1';

function instance(id: string, ip: string): Instance {
  const read = parseTopology(topologyJson([{ id, ip }]));
  if (!read.ok) throw new Error(read.error);
  return read.topology.instances[0];
}

const entries: JournalEntry[] = [
  { version: 11, removes: [], adds: [instance('a', '10.0.0.1')] },
  { version: 12, removes: ['a.web.default.cf.bosh'], adds: [instance('b', '10.0.0.2')] },
  // A change that keeps the version (instances let go without a revision of their own).
  { version: 12, removes: ['b.web.default.cf.bosh'], adds: [] },
];

const journal = (lines: string[]) => Buffer.from(lines.join(''));
const good = () => [journalHeaderLine(10, CLUSTER), ...entries.map((e, k) => journalLine(k + 1, e))];

describe('the journal', () => {
  it('reads back what was written, line by line', () => {
    const read = readJournal(journal(good()), null);
    expect(read.error).toBeNull();
    expect(read.cursor).toEqual({ header: { format: 2, base: 10, cluster: CLUSTER }, n: 3, version: 12 });
    expect(read.entries.map((e) => [e.version, e.removes, e.adds.map((i) => i.id)])).toEqual([
      [11, [], ['a']], [12, ['a.web.default.cf.bosh'], ['b']], [12, ['b.web.default.cf.bosh'], []],
    ]);
    expect(read.consumed).toBe(journal(good()).length);
  });

  it('goes on from a cursor where an earlier read stopped', () => {
    const lines = good();
    const first = readJournal(journal(lines.slice(0, 2)), null);
    const rest = readJournal(journal(lines.slice(2)), first.cursor, first.consumed);
    expect(rest.error).toBeNull();
    expect(rest.entries.map((e) => e.version)).toEqual([12, 12]);
  });

  it('waits at an incomplete last line (a torn append) without calling it corrupt', () => {
    const lines = good();
    const torn = journal([...lines.slice(0, 3), lines[3].slice(0, 20)]);
    const read = readJournal(torn, null);
    expect(read.error).toBeNull();
    expect(read.entries).toHaveLength(2);
    expect(read.consumed).toBe(journal(lines.slice(0, 3)).length);
  });

  const corruptions: Array<[string, (lines: string[]) => string[], RegExp]> = [
    ['a flipped byte', (l) => [l[0], l[1], l[2].replace('10.0.0.2', '10.0.0.3'), l[3]], /line 2 .*checksum does not match/],
    ['a line lost', (l) => [l[0], l[1], l[3]], /line 2 .*line number is 3, expected 2/],
    ['a line repeated', (l) => [l[0], l[1], l[1], l[2]], /line 2 .*line number is 1, expected 2/],
    ['lines swapped', (l) => [l[0], l[2], l[1], l[3]], /line 1 .*line number is 2, expected 1/],
    ['a line cut and the next appended after it', (l) => [l[0], l[1].slice(0, 30), l[2]], /line 1 .*checksum|line 1 .*not JSON/],
    ['null', (l) => [l[0], l[1], 'null\n'], /line 2 .*no checksum/],
    ['a list', (l) => [l[0], l[1], '[]\n'], /line 2 .*no checksum/],
    ['a string', (l) => [l[0], l[1], '"v"\n'], /line 2 .*no checksum/],
    ['a number', (l) => [l[0], l[1], '42\n'], /line 2 .*no checksum/],
    ['an empty line', (l) => [l[0], l[1], '\n'], /line 2 .*no checksum/],
  ];
  for (const [what, mutate, error] of corruptions) {
    it(`stops at ${what}, naming the line, and keeps what came before`, () => {
      const read = readJournal(journal(mutate(good())), null);
      expect(read.error).toMatch(error);
      const line = required(/line (\d+)/.exec(required(read.error, 'a journal error')), 'the line number in the error')[1];
      const kept = Number(line) - 1;
      expect(read.entries).toHaveLength(kept);
      expect(read.cursor?.n).toBe(kept);
    });
  }

  /** A line with a valid checksum and line number around any object: only its shape can fail. */
  const sealedLine = (object: Record<string, unknown>) => sealedBody(JSON.stringify(object).slice(0, -1));
  const wrongShapes: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a version that is a string', { n: 1, v: '11', rm: [], add: [] }, /version is not a non-negative integer/],
    ['a fractional version', { n: 1, v: 11.5, rm: [], add: [] }, /version is not a non-negative integer/],
    ['a version older than the base', { n: 1, v: 9, rm: [], add: [] }, /older than the one before it/],
    ['removals that are not names', { n: 1, v: 11, rm: [7], add: [] }, /removals are not a list of instance names/],
    ['additions that are not a list', { n: 1, v: 11, rm: [], add: {} }, /additions are not a list/],
    ['a row of the wrong width', { n: 1, v: 11, rm: [], add: [['a']] }, /expected \d+ columns/],
    ['a null row', { n: 1, v: 11, rm: [], add: [null] }, /expected \d+ columns/],
    ['a row with a bad address', { n: 1, v: 11, rm: [], add: [rowWith(9, 'not-an-ip')] }, /ip "not-an-ip" is not an IP address/],
    ['a member too many', { n: 1, v: 11, rm: [], add: [], x: 1 }, /members are/],
    ['a member missing', { n: 1, v: 11, rm: [] }, /members are/],
  ];
  for (const [what, object, error] of wrongShapes) {
    it(`rejects a sealed line with ${what}`, () => {
      const read = readJournal(journal([journalHeaderLine(10, CLUSTER), sealedLine(object)]), null);
      expect(read.error).toMatch(error);
      expect(read.entries).toEqual([]);
    });
  }

  it('rejects a header that is not one', () => {
    for (const header of ['null\n', '{"journal":3,"base":1,"cluster":"c"}\n', sealedBody('{"journal":2,"base":-1,"cluster":"c"')]) {
      const read = readJournal(journal([header, journalLine(1, entries[0])]), null);
      expect(read.error).toMatch(/journal header .* is corrupt/);
      expect(read.cursor).toBeNull();
    }
  });

  it('still reads a journal of the first format (no checksums), with the same shape checks', () => {
    const v1 = [
      '{"journal":1,"base":10,"cluster":"c1"}\n',
      `${JSON.stringify({ v: 11, rm: [], add: [rowWith(9, '10.0.0.1')] })}\n`,
      '{"v":12,"rm":"x","add":[]}\n',
    ];
    const read = readJournal(journal(v1), null);
    expect(read.entries).toHaveLength(1);
    expect(read.error).toMatch(/line 2 .*removals are not a list/);
  });
});

/** An object's text (without its closing brace) sealed as the writer seals a line: a CRC-32 of the bytes before the seal. */
function sealedBody(body: string): string {
  return `${body},"crc":"${crc32(body).toString(16).padStart(8, '0')}"}\n`;
}

/** A good record row (RECORD_KEYS order) with one column replaced. */
function rowWith(column: number, value: unknown): unknown[] {
  const row: unknown[] = ['a', null, 'web', ['1'], 'z1', '1', 'default', '1', 'cf', '10.0.0.1', 'bosh', null, 0, null, null, {}];
  row[column] = value;
  return row;
}
