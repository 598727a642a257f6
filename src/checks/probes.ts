// The I/O of one check run: a TCP connect, an HTTP GET, or a command (started by the
// CommandSpawner's shell, not forked from the daemon). Each is bounded by the check's
// timeout on the injected clock and by an abort signal (the daemon stopping); a command
// that outlives either is killed with its whole process group, so a hung check leaves
// nothing behind. Nothing here blocks the event loop: it is all asynchronous I/O.
import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { connect } from 'node:net';
import type { Clock } from '../clock.ts';
import type { HealthCheck } from '../registrations/types.ts';
import type { CommandSpawner, ProbeResult } from './spawner.ts';
import { errorMessage } from '../util/error-message.ts';

export type { ProbeResult } from './spawner.ts';

export function probe(check: HealthCheck, clock: Clock, signal: AbortSignal, spawner: CommandSpawner): Promise<ProbeResult> {
  switch (check.kind) {
    case 'tcp': return bounded(check, clock, signal, (finish) => tcpProbe(check.host, check.port, finish));
    case 'http': return bounded(check, clock, signal, (finish) => httpProbe(check.url, check.status, finish));
    case 'args': return bounded(check, clock, signal, (finish) => {
      const run = spawner.run(check.args, finish);
      return () => run.kill();
    });
  }
}

type Finish = (result: ProbeResult) => void;

/**
 * Runs `start`, which reports through `finish` and returns how to cancel it; resolves with
 * the first of its result, the timeout, or the abort. The cancel runs on timeout and abort.
 */
function bounded(check: HealthCheck, clock: Clock, signal: AbortSignal, start: (finish: Finish) => () => void): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let done = false;
    let cancel: () => void = () => undefined;
    const finish: Finish = (result) => {
      if (done) return;
      done = true;
      timer.cancel();
      signal.removeEventListener('abort', onAbort);
      resolve(result);
    };
    const stop = (detail: string) => {
      if (done) return;
      cancel();
      finish({ passed: false, detail });
    };
    const onAbort = () => stop('stopped: the daemon is shutting down');
    const timer = clock.after(check.timeoutMs, () => stop(`timed out after ${check.timeoutMs} ms${check.kind === 'args' ? '; killed (SIGKILL to its process group)' : ''}`));
    signal.addEventListener('abort', onAbort);
    if (signal.aborted) {
      onAbort();
      return;
    }
    try {
      cancel = start(finish);
    } catch (err) {
      // e.g. a socket refusing its options: a failed run, not a failed daemon
      finish({ passed: false, detail: (err as Error).message });
    }
  });
}

function tcpProbe(host: string, port: number, finish: Finish): () => void {
  const socket = connect({ host, port });
  socket.once('connect', () => {
    socket.destroy();
    finish({ passed: true, detail: 'connected' });
  });
  socket.once('error', (err: NodeJS.ErrnoException) => finish({ passed: false, detail: `connect failed: ${err.code ?? err.message}` }));
  return () => socket.destroy();
}

function httpProbe(url: string, expected: number | null, finish: Finish): () => void {
  const options: RequestOptions = { method: 'GET', agent: false, headers: { 'user-agent': 'presence-dns health check', connection: 'close' } };
  const onResponse = (res: IncomingMessage) => {
    const status = res.statusCode ?? 0;
    // Only the status matters: drop the body and the connection.
    res.destroy();
    const passed = expected === null ? status >= 200 && status < 300 : status === expected;
    finish({ passed, detail: `HTTP ${status}${passed ? '' : expected === null ? ' (want 2xx)' : ` (want ${expected})`}` });
  };
  let req: ClientRequest | null = null;
  let cancelled = false;
  const send = (request: typeof httpRequest) => {
    if (cancelled) return;
    req = request(url, options, onResponse);
    req.once('error', (err: NodeJS.ErrnoException) => finish({ passed: false, detail: `request failed: ${err.code ?? err.message}` }));
    req.end();
  };
  // node:https (and TLS) is loaded only by a daemon that has an https check.
  if (url.startsWith('https:')) {
    import('node:https').then((https) => send(https.request), (err: unknown) => finish({ passed: false, detail: errorMessage(err) }));
  } else {
    send(httpRequest);
  }
  return () => {
    cancelled = true;
    req?.destroy();
  };
}
