// What a follower accepts from NATS: a change message, a head and the snapshot's lines are
// checked whole, and anything else is refused with a reason that names what is wrong.
import { describe, expect, it } from 'vitest';
import {
  decodeChange, decodeHead, encodeChange, encodeHead, FanoutProtocolError, fanoutNames, parseSnapshotHeader, parseSnapshotLine,
  snapshotHeaderLine, snapshotRowLine, snapshotTrailerLine, type ChangeMessage,
} from '../../src/fanout/protocol.ts';
import type { PresenceRow } from '../../src/presence/store.ts';

function row(id: string, revision: number, over: Partial<PresenceRow> = {}): PresenceRow {
  return {
    id, cellId: 'cell-a', group: 'web', groupIds: [1], network: 'default', networkId: 1, deployment: 'cf', az: 'z1', azId: 1,
    index: 0, numId: 7, ip: '10.0.0.1', domain: 'bosh', agentId: null, health: 'running', ports: { http: 8080 },
    routes: [], revision, deleted: false, ...over,
  };
}

const message = (over: Partial<ChangeMessage> = {}): ChangeMessage => ({
  cluster: 'c1', epoch: 'e1', from: 10, to: 12, lastId: 'b', rows: [row('a', 11), row('b', 12, { deleted: true })], ...over,
});

const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const wire = (over: Record<string, unknown>) => ({ ...JSON.parse(new TextDecoder().decode(encodeChange(message()))) as Record<string, unknown>, ...over });

describe('fan-out messages', () => {
  it('a change message survives the wire, routes left out', () => {
    const decoded = decodeChange(encodeChange(message({ rows: [row('a', 11, { routes: [{ hostname: 'x.example', port: 80, tlsPort: null, routeServiceUrl: null, protocol: null, serverCertDomainSan: null }] }), row('b', 12)] })));
    expect(decoded).toEqual(message({ rows: [row('a', 11), row('b', 12)] }));
  });

  it.each([
    ['not JSON', new TextEncoder().encode('{"v":1,'), /not JSON/],
    ['another wire version', bytes(wire({ v: 2 })), /wire version 2/],
    ['no epoch', bytes(wire({ epoch: undefined })), /"epoch"/],
    ['"to" before "from"', bytes(wire({ from: 13 })), /before "from"/],
    ['rows out of order', bytes(wire({ rows: [row('b', 12), row('a', 11)] })), /out of order/],
    ['a row past "to"', bytes(wire({ to: 11, rows: [row('a', 11), row('b', 12)] })), /outside/],
    ['a last row short of "to"', bytes(wire({ to: 13 })), /last row is not at "to"/],
    ['a row with a wrong type', bytes(wire({ rows: [{ ...row('a', 11), groupIds: 'x' }, row('b', 12)] })), /row "a": "groupIds"/],
    ['a row without its address', bytes(wire({ rows: [{ ...row('a', 11), ip: undefined }, row('b', 12)] })), /"ip"/],
    ['a row that is not an object', bytes(wire({ rows: [null] })), /not an object/],
    ['an unknown health', bytes(wire({ rows: [{ ...row('a', 11), health: 'fine' }, row('b', 12)] })), /"health"/],
  ])('a change message with %s is refused', (_what, data, reason) => {
    expect(() => decodeChange(data)).toThrow(FanoutProtocolError);
    expect(() => decodeChange(data)).toThrow(reason);
  });

  it('a head, and its checks', () => {
    expect(decodeHead(encodeHead({ cluster: 'c1', epoch: 'e1', revision: 5 }))).toEqual({ cluster: 'c1', epoch: 'e1', revision: 5 });
    expect(() => decodeHead(bytes({ v: 1, cluster: 'c1', epoch: 'e1', revision: -1 }))).toThrow(/"revision"/);
  });

  it('the snapshot: a header, rows and a trailer that counts them', () => {
    expect(parseSnapshotHeader(snapshotHeaderLine({ cluster: 'c1', epoch: 'e1' }).trim())).toEqual({ cluster: 'c1', epoch: 'e1' });
    expect(parseSnapshotLine(snapshotRowLine(row('a', 3)).trim(), 'snapshot')).toEqual(row('a', 3));
    expect(parseSnapshotLine(snapshotTrailerLine({ revision: 9, lastId: 'a', rows: 1 }).trim(), 'snapshot')).toEqual({ revision: 9, lastId: 'a', rows: 1 });
    expect(() => parseSnapshotLine('{"v":1,"end":true,"revision":9}', 'snapshot')).toThrow(/"lastId"/);
  });

  it('names derive from the prefix', () => {
    expect(fanoutNames('presence-dns')).toEqual({
      changes: 'presence-dns.changes', head: 'presence-dns.head', stream: 'PRESENCE-DNS_CHANGES', bucket: 'presence-dns-snapshots', object: 'topology',
    });
  });
});
