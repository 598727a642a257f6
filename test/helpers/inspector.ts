// Ending one thread of a running daemon from outside, as a bug or an out-of-memory would:
// the daemon is started with `--inspect=127.0.0.1:0` (DaemonOptions.nodeArgs), and this
// attaches to it over the V8 inspector protocol, finds the worker thread whose module URL
// matches, and makes it call process.exit() — which ends that thread only. Nothing in the
// daemon knows of it; what the test then watches is how the daemon recovers.
import type { RunningDaemon } from './daemon.ts';
import { waitFor } from './daemon.ts';
import { required } from './required.ts';

/** The nodeArgs that make a daemon reachable by `exitWorker`. */
export const INSPECT_ARGS = ['--inspect=127.0.0.1:0'];

interface InspectorMessage {
  id?: number;
  method?: string;
  params?: { sessionId?: string; workerInfo?: { url: string } };
}

/** Ends the worker thread of `daemon` whose module URL ends with `moduleSuffix` (e.g. 'control/worker.js'). */
export async function exitWorker(daemon: RunningDaemon, moduleSuffix: string, code = 70): Promise<void> {
  const inspectorUrl = () => /Debugger listening on (ws:\/\/\S+)/.exec(daemon.stderr())?.[1];
  await waitFor(() => inspectorUrl() !== undefined, 10_000, 'the inspector URL on stderr');
  const url = required(inspectorUrl(), 'the inspector URL on stderr');
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener('error', () => reject(new Error(`cannot connect to the inspector at ${url}`)), { once: true });
  });
  try {
    const session = new Promise<string>((resolve) => {
      socket.addEventListener('message', (event: MessageEvent<string>) => {
        const message = JSON.parse(event.data) as InspectorMessage;
        const sessionId = message.params?.sessionId;
        if (message.method === 'NodeWorker.attachedToWorker' && sessionId !== undefined && message.params?.workerInfo?.url.endsWith(moduleSuffix)) resolve(sessionId);
      });
    });
    socket.send(JSON.stringify({ id: 1, method: 'NodeWorker.enable', params: { waitForDebuggerOnStart: false } }));
    const sessionId = await Promise.race([session, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no worker thread running ${moduleSuffix}`)), 10_000))]);
    const evaluate = { id: 1, method: 'Runtime.evaluate', params: { expression: `process.exit(${code})` } };
    socket.send(JSON.stringify({ id: 2, method: 'NodeWorker.sendMessageToWorker', params: { sessionId, message: JSON.stringify(evaluate) } }));
  } finally {
    // Closing detaches; the worker has been told to exit by then (messages are ordered).
    await new Promise((resolve) => setTimeout(resolve, 200));
    socket.close();
  }
}
