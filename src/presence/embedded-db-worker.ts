// The embedded database's thread: PGlite (PostgreSQL in WebAssembly) blocks the thread it
// runs on for every query, and for about a second while it opens, so it runs here and
// never on the DNS thread. Clients (the registrar and reaper on the main thread, the
// syncer in the topology worker) each talk to it over a MessagePort (embedded-db.ts).
// PGlite is one session: while one client's transaction is open, everyone else's
// statements wait, so no statement ever runs inside another client's transaction.
import { mkdirSync } from 'node:fs';
import { workerData, type MessagePort } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';
import { inBackground } from '../util/background.ts';
import { errorMessage } from '../util/error-message.ts';
import { parentThreadPort } from '../util/worker-thread.ts';
import type { DbRequest, DbResponse, EmbeddedDbOptions } from './embedded-db.ts';
import { applyPgliteSettings } from './pglite-settings.ts';
import { seedDataDir } from './pglite-template.ts';

const port = parentThreadPort();
const options = workerData as EmbeddedDbOptions;
/** A transaction held longer than this is rolled back (its client is stuck or gone). */
const TRANSACTION_LIMIT_MS = 30_000;

interface Client {
  port: MessagePort;
  /** Channels this client listens on → PGlite's unsubscribe. */
  listening: Map<string, () => Promise<void>>;
}

/** PGlite, once open; requests that arrive while it opens wait for it (and fail if it cannot). */
const opened: Promise<PGlite> = (async () => {
  mkdirSync(options.dir, { recursive: true });
  // A first start unpacks the template made at build time instead of running initdb.
  seedDataDir(options.dir);
  return PGlite.create(options.dir, { startParams: applyPgliteSettings() });
})();
opened.catch(() => undefined);
/** The open transaction: whose it is. Everyone else's statements wait until it ends. */
let open: { client: Client; tx: number; timer: NodeJS.Timeout } | null = null;
const waiting: Array<{ client: Client; request: DbRequest }> = [];
let nextTx = 1;
let pumping = false;

function reply(client: Client, response: DbResponse): void {
  client.port.postMessage(response);
}

async function run(client: Client, request: DbRequest): Promise<void> {
  try {
    const db = await opened;
    switch (request.op) {
      case 'query': {
        const result = await db.query(request.sql, request.params);
        reply(client, { id: request.id, ok: true, rows: result.rows as Array<Record<string, unknown>>, rowCount: result.affectedRows ?? result.rows.length });
        return;
      }
      case 'begin': {
        await db.query(request.isolation === 'repeatable read' ? 'BEGIN ISOLATION LEVEL REPEATABLE READ' : 'BEGIN');
        const tx = nextTx++;
        // A stuck client must not hold everyone else forever.
        const timer = setTimeout(() => submit(client, { id: -1, op: 'rollback', tx }), TRANSACTION_LIMIT_MS);
        open = { client, tx, timer };
        reply(client, { id: request.id, ok: true, tx });
        return;
      }
      case 'commit':
      case 'rollback': {
        if (open?.client !== client || open.tx !== request.tx) throw new Error(`transaction ${request.tx} is not open (rolled back after ${TRANSACTION_LIMIT_MS} ms?)`);
        clearTimeout(open.timer);
        open = null;
        await db.query(request.op === 'commit' ? 'COMMIT' : 'ROLLBACK');
        reply(client, { id: request.id, ok: true });
        return;
      }
      case 'listen': {
        if (!client.listening.has(request.channel)) {
          client.listening.set(request.channel, await db.listen(request.channel, () => client.port.postMessage({ notify: request.channel })));
        }
        reply(client, { id: request.id, ok: true });
        return;
      }
      case 'unlisten':
        await client.listening.get(request.channel)?.();
        client.listening.delete(request.channel);
        reply(client, { id: request.id, ok: true });
        return;
    }
  } catch (err) {
    reply(client, { id: request.id, ok: false, error: (err as Error).message, code: (err as { code?: string }).code ?? null });
  }
}

/** May run now: no transaction is open, or it is part of the open one. */
function runnable(client: Client, request: DbRequest): boolean {
  return open === null || (open.client === client && 'tx' in request && request.tx === open.tx);
}

function submit(client: Client, request: DbRequest): void {
  waiting.push({ client, request });
  inBackground('embedded_db', pump());
}

/** Runs waiting requests one at a time (PGlite is one session), oldest runnable first. */
async function pump(): Promise<void> {
  if (pumping) return;
  pumping = true;
  try {
    for (let k = waiting.findIndex((w) => runnable(w.client, w.request)); k !== -1; k = waiting.findIndex((w) => runnable(w.client, w.request))) {
      const [{ client, request }] = waiting.splice(k, 1);
      await run(client, request);
    }
  } finally {
    pumping = false;
  }
}

function accept(port: MessagePort): void {
  const client: Client = { port, listening: new Map() };
  port.on('message', (request: DbRequest) => submit(client, request));
  port.on('close', () => {
    for (const unlisten of client.listening.values()) inBackground('embedded_db_unlisten', unlisten());
    if (open?.client === client) submit(client, { id: -1, op: 'rollback', tx: open.tx });
  });
}

port.on('message', (message: { type: 'connect'; port: MessagePort } | { type: 'close' }) => {
  if (message.type === 'connect') accept(message.port);
  else inBackground('embedded_db_close', opened.then((db) => db.close()).finally(() => port.postMessage({ type: 'closed' })));
});
opened.then(
  () => port.postMessage({ type: 'ready' }),
  (err: unknown) => port.postMessage({ type: 'failed', error: errorMessage(err) }),
);
