// A real nats-server for tests, and a NATS client that plays gorouter.
// `startNats()` uses NATS_URL when set (CI may provide a server; it must serve this test
// run alone, since router.* subjects are broadcast) and otherwise starts `nats-server`
// from PATH on a free loopback port. Tests that kill the server, need auth or TLS, or
// must not hear another test's router.start ask for their own. A missing nats-server
// binary is a failure, never a skip.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { waitFor } from './daemon.ts';

export interface NatsServer {
  url: string;
  /** The server process's id (changes with a restart); null for NATS_URL's server. */
  pid(): number | null;
  /** Kills the server process (SIGKILL: no goodbye to clients). Own servers only. */
  kill(): Promise<void>;
  /** Starts it again on the same port (with other arguments if given). Own servers only. */
  restart(args?: string[]): Promise<void>;
  stop(): Promise<void>;
}

export interface NatsOptions {
  /** Always start a private server (needed to kill it, or to require auth). */
  own?: boolean;
  /** Extra nats-server arguments, e.g. ['--user', 'u', '--pass', 'p']. */
  args?: string[];
}

function spawnServer(port: number, args: string[]): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    let listening = 0;
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT'
        ? new Error('nats-server is not on PATH (Debian: apt-get install -y nats-server); route emitter tests need a real one')
        : err);
    });
    child.once('exit', (code) => reject(new Error(`nats-server exited with ${code} before it was ready:\n${log}`)));
    child.stderr.on('data', (d: Buffer) => {
      log += d.toString();
      const m = /Listening for client connections on [^\s]+:(\d+)/.exec(log);
      if (m) listening = Number(m[1]);
      if (listening && log.includes('Server is ready')) resolve({ child, port: listening });
    });
  });
}

async function killProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

export async function startNats(options: NatsOptions = {}): Promise<NatsServer> {
  const external = process.env.NATS_URL;
  if (external && !options.own && !options.args) {
    const refuse = () => Promise.reject(new Error('cannot kill or restart the NATS server of NATS_URL'));
    return { url: external, pid: () => null, kill: refuse, restart: refuse, stop: () => Promise.resolve() };
  }
  let args = options.args ?? [];
  // -p -1: nats-server picks a free port; a restart reuses the one it picked.
  let { child, port } = await spawnServer(-1, args);
  return {
    url: `nats://127.0.0.1:${port}`,
    pid: () => child.pid ?? null,
    kill: () => killProcess(child),
    async restart(newArgs) {
      await killProcess(child);
      args = newArgs ?? args;
      ({ child, port } = await spawnServer(port, args));
    },
    stop: () => killProcess(child),
  };
}

export interface ReceivedMessage {
  subject: string;
  /** The body as sent: tests check exact text where JSON numbers would lose digits. */
  raw: string;
  body: Record<string, unknown>;
}

/** A NATS client that behaves like gorouter towards route emitters. */
export interface Gorouter {
  nc: NatsConnection;
  received: ReceivedMessage[];
  greets: number;
  registers(): ReceivedMessage[];
  unregisters(): ReceivedMessage[];
  /** Forgets what was received so far. */
  clear(): void;
  /** Publishes `router.start` as a (re)started gorouter does. */
  sendStart(intervalSeconds: number, pruneThresholdSeconds?: number): void;
  /** Waits until `check` holds for what was received. */
  until(check: (g: Gorouter) => boolean, what: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface GorouterOptions {
  /** minimumRegisterIntervalInSeconds in greet replies (default 20). */
  greetInterval?: number;
  /** Answer router.greet (default true). */
  answerGreet?: boolean;
  user?: string;
  pass?: string;
  token?: string;
  tls?: { caFile: string; certFile: string; keyFile: string };
}

export async function playGorouter(url: string, options: GorouterOptions = {}): Promise<Gorouter> {
  // Reconnects faster than the emitter (1 s), so after a NATS restart it listens first.
  const nc = await connect({
    servers: url, user: options.user, pass: options.pass, token: options.token, tls: options.tls,
    maxReconnectAttempts: -1, reconnectTimeWait: 50, reconnectJitter: 0,
  });
  const g: Gorouter = {
    nc,
    received: [],
    greets: 0,
    registers: () => g.received.filter((m) => m.subject === 'router.register'),
    unregisters: () => g.received.filter((m) => m.subject === 'router.unregister'),
    clear: () => void g.received.splice(0),
    sendStart(intervalSeconds, pruneThresholdSeconds = 120) {
      nc.publish('router.start', JSON.stringify({
        id: 'gorouter-test', hosts: ['127.0.0.1'],
        minimumRegisterIntervalInSeconds: intervalSeconds, pruneThresholdInSeconds: pruneThresholdSeconds,
      }));
    },
    until: (check, what, timeoutMs = 10_000) => waitFor(() => check(g), timeoutMs, what),
    close: () => nc.close(),
  };
  for (const subject of ['router.register', 'router.unregister']) {
    nc.subscribe(subject, {
      callback: (_err, msg) => {
        const raw = msg.string();
        g.received.push({ subject, raw, body: JSON.parse(raw) as Record<string, unknown> });
      },
    });
  }
  nc.subscribe('router.greet', {
    callback: (_err, msg) => {
      g.greets++;
      if (options.answerGreet !== false && msg.reply) {
        msg.respond(JSON.stringify({
          id: 'gorouter-test', hosts: ['127.0.0.1'],
          minimumRegisterIntervalInSeconds: options.greetInterval ?? 20, pruneThresholdInSeconds: 120,
        }));
      }
    },
  });
  await nc.flush();
  return g;
}

export interface TlsFiles {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** nats-server arguments for TLS with client certificates required. */
  serverArgs: string[];
}

/** A throwaway CA with a server certificate for 127.0.0.1 and a client certificate (openssl). */
export function makeTlsFiles(): TlsFiles {
  const dir = mkdtempSync(join(tmpdir(), 'presence-dns-tls-'));
  const f = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=presence-dns test CA');
  for (const [name, ext] of [['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'], ['client', 'extendedKeyUsage=clientAuth']]) {
    writeFileSync(f(`${name}.ext`), `${ext}\n`);
    openssl('req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-out', f(`${name}.pem`), '-days', '1', '-extfile', f(`${name}.ext`));
  }
  return {
    ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key'),
    serverArgs: ['--tls', '--tlscert', f('server.pem'), '--tlskey', f('server.key'), '--tlsverify', '--tlscacert', f('ca.pem')],
  };
}
