// SIGTERM under a query in flight: the daemon stops taking new queries, still answers
// the one it is working on (here: waiting on a slow upstream), then exits 0.
import { expect, it } from 'vitest';
import { addresses, dig } from '../helpers/dig.ts';
import { startDaemon, waitFor } from '../helpers/daemon.ts';
import { topologyJson } from '../helpers/topology.ts';
import { TestUpstream } from '../forward/upstream-server.ts';

it('answers the query in flight after SIGTERM, then exits 0', async ({ onTestFinished }) => {
  const upstream = await TestUpstream.start({ 'slow.example.com': { addresses: ['192.0.2.9'], ttl: 60 } });
  onTestFinished(() => upstream.stop());
  const daemon = await startDaemon({
    files: { 'topology.json': topologyJson([{ id: 'a1', ip: '10.0.0.1' }]) },
    config: { forward: { enabled: true, upstreams: [`127.0.0.1:${upstream.port}`] } },
  });
  upstream.hold();
  const answer = dig(daemon.dnsPort, 'slow.example.com', 'A', ['+time=5']);
  await waitFor(() => upstream.count('slow.example.com') === 1, 20_000, 'the query to reach the upstream');
  const exited = daemon.stop('SIGTERM');
  await new Promise((r) => setTimeout(r, 200));
  upstream.release();
  const r = await answer;
  expect(r.status).toBe('NOERROR');
  expect(addresses(r)).toEqual(['192.0.2.9']);
  expect(await exited).toBe(0);
  const after = await dig(daemon.dnsPort, 'a1.web.default.cf.bosh', 'A', ['+time=1']);
  expect(after.status).toBe('');
});
