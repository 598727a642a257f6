// What a daemon says about its topology files, for the scenarios that damage them: the
// counters and gauges of /metrics in one scrape, the topology module's detail in /ready
// and /v1/status, waiting (polled often: some scenarios do this thousands of times) until
// the counters say a file was read, and asking every name at once to compare a daemon's
// answers with what the test knows it must answer.
import { UdpClient } from '../../dns/client.ts';
import type { RunningDaemon } from '../../helpers/daemon.ts';

export interface TopologyCounters {
  reloads: number;
  reloadFailures: number;
  cacheRejects: number;
  journalErrors: number;
  workerRestarts: number;
  /** The version in service on the thread answering DNS. */
  revision: number;
  records: number;
}

/** One scrape of /metrics. */
export async function topologyCounters(daemon: RunningDaemon): Promise<TopologyCounters> {
  const text = await (await daemon.admin('/metrics')).text();
  const value = (name: string) => Number(new RegExp(`^presence_dns_topology_${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    reloads: value('reloads_total'),
    reloadFailures: value('reload_failures_total'),
    cacheRejects: value('image_cache_rejects_total'),
    journalErrors: value('journal_errors_total'),
    workerRestarts: value('worker_restarts_total'),
    revision: value('revision'),
    records: value('records'),
  };
}

/**
 * The counters once `done` holds for them (polled every 5 ms); throws naming `what` and
 * the last counters seen after `timeoutMs` — generous: a loaded CI machine is slow, and
 * only a daemon that never gets there should fail.
 */
export async function countersWhen(daemon: RunningDaemon, done: (c: TopologyCounters) => boolean, what: string, timeoutMs = 20_000): Promise<TopologyCounters> {
  let last: TopologyCounters | null = null;
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
    last = await topologyCounters(daemon);
    if (done(last)) return last;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last seen ${JSON.stringify(last)}`);
}

export interface TopologyDetail {
  version: number | null;
  records: number;
  lastError: string | null;
  cacheError: string | null;
  journalError: string | null;
  workerUp: boolean;
  workerRestarts: number;
}

/** /ready: its status and the topology module's detail. */
export async function readyTopology(daemon: RunningDaemon): Promise<{ status: number; detail: TopologyDetail }> {
  const res = await daemon.admin('/ready');
  const body = (await res.json()) as { modules: { topology: { detail: TopologyDetail } } };
  return { status: res.status, detail: body.modules.topology.detail };
}

/** /v1/status's topology section. */
export async function statusTopology(daemon: RunningDaemon): Promise<TopologyDetail> {
  return ((await (await daemon.admin('/v1/status')).json()) as { topology: TopologyDetail }).topology;
}

/** What one A query got: its addresses sorted, or its rcode when it carried none. */
export type Answer = string[] | { rcode: number } | null;

/**
 * Asks every name once (A, over UDP, 32 in flight at a time: a larger burst can overflow
 * the test's own socket buffer, and a query lost there is not the daemon's): name → the
 * sorted addresses, or the rcode of an answer without any, or null when unanswered.
 */
export async function askAll(daemon: RunningDaemon, names: string[]): Promise<Map<string, Answer>> {
  const client = new UdpClient(daemon.dnsPort);
  const out = new Map<string, Answer>();
  try {
    for (let k = 0; k < names.length; k += 32) {
      const batch = names.slice(k, k + 32);
      const replies = await Promise.all(batch.map((name) => client.ask(name, 1, 3000)));
      batch.forEach((name, j) => {
        const reply = replies[j];
        out.set(name, reply === null ? null : reply.addresses.length ? reply.addresses : { rcode: reply.rcode });
      });
    }
    return out;
  } finally {
    client.close();
  }
}

/**
 * The names whose answer is not `expected` (addresses, sorted; [] for no such name: NXDOMAIN
 * or an empty NOERROR), each with what it got.
 */
export function wrongAnswers(got: Map<string, Answer>, expected: Map<string, string[]>): string[] {
  const wrong: string[] = [];
  for (const [name, want] of expected) {
    const answer = got.get(name) ?? null;
    const ok = answer === null
      ? false
      : Array.isArray(answer)
        ? answer.join() === [...want].sort().join()
        : want.length === 0 && (answer.rcode === 0 || answer.rcode === 3);
    if (!ok) wrong.push(`${name}: wanted ${want.join(',') || 'no address'}, got ${answer === null ? 'no answer' : Array.isArray(answer) ? answer.join(',') : `rcode ${answer.rcode}`}`);
  }
  return wrong;
}
