// Asking one upstream one question: UDP from a fresh socket (a random source port per
// query, and an ICMP "port unreachable" fails fast instead of waiting for the timeout),
// retried over TCP when the UDP answer is truncated. The only sockets of the forwarder.
import { createSocket } from 'node:dgram';
import { isIPv6, connect } from 'node:net';
import type { Clock } from './clock.ts';
import { parseUpstreamResponse, type StoredMessage } from './message.ts';
import type { UpstreamAddress } from './upstreams.ts';

export type Exchange =
  | { ok: true; stored: StoredMessage; transport: 'udp' | 'tcp' }
  | { ok: false; reason: string };

function withDeadline<T>(clock: Clock, ms: number, work: (settle: (value: T) => void) => () => void, onTimeout: T): Promise<T> {
  return new Promise((resolve) => {
    let done = false;
    let cleanup: () => void = () => {};
    const settle = (value: T) => {
      if (done) return;
      done = true;
      timer.cancel();
      cleanup();
      resolve(value);
    };
    const timer = clock.after(ms, () => settle(onTimeout));
    cleanup = work(settle);
    if (done) cleanup();
  });
}

function exchangeUdp(to: UpstreamAddress, query: Buffer, clock: Clock, timeoutMs: number): Promise<Exchange | { ok: true; truncated: true }> {
  return withDeadline<Exchange | { ok: true; truncated: true }>(clock, timeoutMs, (settle) => {
    const socket = createSocket(isIPv6(to.host) ? 'udp6' : 'udp4');
    socket.on('error', (err: NodeJS.ErrnoException) => settle({ ok: false, reason: `UDP: ${err.code ?? err.message}` }));
    socket.on('message', (reply) => {
      const parsed = parseUpstreamResponse(reply, query);
      // A reply that does not match our query (spoofed or late) is ignored, not fatal.
      if (!parsed.ok) return;
      settle(parsed.truncated ? { ok: true, truncated: true } : { ok: true, stored: parsed.stored, transport: 'udp' });
    });
    socket.connect(to.port, to.host, () => socket.send(query));
    return () => socket.close();
  }, { ok: false, reason: `no UDP answer within ${timeoutMs} ms` });
}

function exchangeTcp(to: UpstreamAddress, query: Buffer, clock: Clock, timeoutMs: number): Promise<Exchange> {
  return withDeadline<Exchange>(clock, timeoutMs, (settle) => {
    const conn = connect({ host: to.host, port: to.port });
    const frame = Buffer.allocUnsafe(2 + query.length);
    frame.writeUInt16BE(query.length, 0);
    query.copy(frame, 2);
    let received = Buffer.alloc(0);
    conn.on('connect', () => conn.write(frame));
    conn.on('error', (err: NodeJS.ErrnoException) => settle({ ok: false, reason: `TCP: ${err.code ?? err.message}` }));
    conn.on('close', () => settle({ ok: false, reason: 'TCP: connection closed before the answer' }));
    conn.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 2 || received.length < 2 + received.readUInt16BE(0)) return;
      const parsed = parseUpstreamResponse(received.subarray(2, 2 + received.readUInt16BE(0)), query);
      settle(parsed.ok ? { ok: true, stored: parsed.stored, transport: 'tcp' } : { ok: false, reason: `TCP: ${parsed.reason}` });
    });
    return () => conn.destroy();
  }, { ok: false, reason: `no TCP answer within ${timeoutMs} ms` });
}

/** One question to one upstream within `timeoutMs` (UDP, then TCP if truncated). */
export async function exchange(to: UpstreamAddress, query: Buffer, clock: Clock, timeoutMs: number): Promise<Exchange> {
  const started = clock.now();
  const udp = await exchangeUdp(to, query, clock, timeoutMs);
  if (!udp.ok || !('truncated' in udp)) return udp;
  return exchangeTcp(to, query, clock, Math.max(1, timeoutMs - (clock.now() - started)));
}
