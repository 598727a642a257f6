// SIGHUP with a broken config under a steady UDP load: again and again (20 rounds; 200
// with FAULTS_LONG=1) the config file is replaced by a broken one — not JSON, a wrong
// type, an unknown key, empty, deleted, a directory — and the daemon signalled, then the good file is
// put back and signalled again. Each broken file is refused with an error naming it,
// each good one reloaded, and every query is answered throughout (0 failed, 0 records lost).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { addresses, dig } from '../../helpers/dig.ts';
import { waitFor, type RunningDaemon } from '../../helpers/daemon.ts';
import { required } from '../../helpers/required.ts';
import { daemonRss, expectNothingLost, ONE_INSTANCE, reportSeen, size, startOneInstanceDaemon, Watch } from './report.ts';

const ROUNDS = size(24, 240);
const NAME = ONE_INSTANCE.name;
let daemon: RunningDaemon;

beforeAll(async () => {
  daemon = await startOneInstanceDaemon();
});

afterAll(async () => {
  expect(await daemon.stop()).toBe(0);
});

const BROKEN: Array<{ what: string; write: (file: string) => void }> = [
  { what: 'not JSON', write: (file) => writeFileSync(file, '{"dns": {"ttl": 5,') },
  { what: 'a wrong type', write: (file) => writeFileSync(file, '{"dns": {"ttl": "soon"}}') },
  { what: 'an unknown key', write: (file) => writeFileSync(file, '{"dns": {"tll": 5}}') },
  { what: 'empty', write: (file) => writeFileSync(file, '') },
  { what: 'deleted', write: (file) => rmSync(file) },
  { what: 'a directory', write: (file) => {
    rmSync(file);
    mkdirSync(file);
  } },
];

const count = (text: string) => daemon.logs.filter((l) => l.includes(text)).length;

it(`SIGHUP with a broken config under load, ${ROUNDS} times: every broken file refused, every good one reloaded, 0 failed queries`, async () => {
  const good = readFileSync(daemon.configFile, 'utf8');
  const watch = new Watch({ daemons: [daemon], expected: new Map([[NAME, [ONE_INSTANCE.ip]]]) });
  const refusals: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const broken = BROKEN[round % BROKEN.length];
    const refusedBefore = count('the config file is invalid');
    broken.write(daemon.configFile);
    daemon.process.kill('SIGHUP');
    await waitFor(() => count('the config file is invalid') > refusedBefore, 30_000, `the ${broken.what} config to be refused`);
    refusals.push(required(daemon.logs.filter((l) => l.includes('the config file is invalid')).at(-1), 'the refusal log line'));
    const reloadedBefore = count('config reloaded');
    rmSync(daemon.configFile, { recursive: true, force: true });
    writeFileSync(daemon.configFile, good);
    daemon.process.kill('SIGHUP');
    await waitFor(() => count('config reloaded') > reloadedBefore, 30_000, 'the good config to be reloaded');
  }
  const seen = await watch.stop();
  reportSeen(`SIGHUP with a broken config ×${ROUNDS}`, seen, daemonRss(daemon));
  expectNothingLost(seen);
  expect(daemon.process.exitCode).toBeNull();
  // Each refusal says what is wrong.
  expect(refusals[1]).toContain('dns.ttl');
  expect(refusals[2]).toContain('tll');
  expect(refusals[4]).toMatch(/config\.json/);
  expect(addresses(await dig(daemon.dnsPort, `${NAME}.`))).toEqual([ONE_INSTANCE.ip]);
}, size(60_000, 600_000));
