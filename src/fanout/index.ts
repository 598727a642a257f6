// fanout: the presence changes read once from the database and spread over NATS, so the
// database does the same work per change whether ten nodes follow or ten thousand. One
// publisher candidate at a time publishes (publisher.ts); every node follows NATS
// (follower.ts) and falls back to the database while NATS cannot answer (fallback.ts).
// `startFanout` is the one way to start it: the topology worker and the fleet bench call it.
import { connect, Events, type NatsConnection } from 'nats';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { SqlChangeSource } from '../presence/change-source.ts';
import { errorMessage } from '../util/error-message.ts';
import { natsConnectionOptions } from '../util/nats-options.ts';
import { FallbackSource, type FanoutMode } from './fallback.ts';
import { NatsChangeSource } from './follower.ts';
import { fanoutNames } from './protocol.ts';
import { Publisher } from './publisher.ts';

export { FallbackSource, type FanoutMode } from './fallback.ts';
export { FanoutUnavailable, NatsChangeSource } from './follower.ts';
export { fanoutNames, type FanoutNames } from './protocol.ts';
export { Publisher, PUBLISHER_LOCK, type PublisherStatus } from './publisher.ts';

/** The `sync` keys of the fan-out, as the worker receives them. */
export interface FanoutSettings {
  natsUrl: string;
  prefix: string;
  /** This node is a publisher candidate. */
  publisher: boolean;
  snapshotEvery: number;
  snapshotSlots: number;
  /** This node's id in the publisher lock. */
  owner: string;
}

export interface FanoutStatus {
  mode: FanoutMode;
  /** Why the last pass read the database, or null. */
  reason: string | null;
  connected: boolean;
  /** The newest revision the publisher announced; null before one was heard. */
  head: number | null;
  publishing: boolean;
  /** Messages from NATS that failed their checks (rejected whole). */
  rejected: number;
  /** Database snapshots that had to wait for a slot. */
  slotWaits: number;
}

export interface Fanout {
  /** The syncer's change source. */
  readonly source: FallbackSource;
  status(): FanoutStatus;
  stop(): Promise<void>;
}

export interface FanoutOptions {
  settings: FanoutSettings;
  /** The database this node reads when it falls back (and publishes from, as a candidate). */
  sql: SqlChangeSource;
  intervalMs: number;
  /** The publisher lock's TTL (registrar.ttl). */
  lockTtlMs: number;
  clock: Clock;
  logger: Logger;
  /** Connection name, shown by the NATS server's monitoring. */
  name?: string;
}

/**
 * Starts following (and, on a candidate, taking part in the publisher election). Returns
 * at once: until NATS is reached the node reads the database, and NATS is retried forever.
 */
export function startFanout(options: FanoutOptions): Fanout {
  const { settings, sql, intervalMs, clock, logger } = options;
  const names = fanoutNames(settings.prefix);
  const source = new FallbackSource({ nats: null, sql, snapshotSlots: settings.snapshotSlots, intervalMs, clock, logger: logger.child({ part: 'fanout' }) });
  /** Between a disconnect and a reconnect nothing reaches the server: the follower and the publisher know at once. */
  let connected = false;
  let nc: NatsConnection | null = null;
  let nats: NatsChangeSource | null = null;
  let publisher: Publisher | null = null;
  let stopped = false;

  // Not awaited by stop(): a server never reached leaves the attempt pending; `stopped` closes it if it ever connects.
  void connect({
    ...natsConnectionOptions({ nats_url: settings.natsUrl }, 'sync'),
    name: options.name ?? 'presence-dns sync',
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
  }).then(async (connection) => {
    if (stopped) {
      await connection.close();
      return;
    }
    nc = connection;
    connected = true;
    const follower = new NatsChangeSource({ nc: connection, names, intervalMs, clock, connected: () => connected });
    nats = follower;
    follower.listen();
    source.attach(follower);
    void (async () => {
      for await (const event of connection.status()) {
        if (event.type === Events.Disconnect) {
          connected = false;
          logger.warn({ part: 'fanout' }, 'fan-out: disconnected from NATS; syncing from the database until it is back');
          // At once, not at the next interval: the first read of the database is still spread over one.
          source.wakeSyncer();
        } else if (event.type === Events.Reconnect) {
          connected = true;
          follower.reconnected();
          // The publisher announces its head at once rather than at its next interval: the fleet leaves the database sooner.
          void publisher?.tick();
          logger.info({ part: 'fanout' }, 'fan-out: reconnected to NATS');
        }
      }
    })();
    logger.info({ nats: connection.getServer() }, 'fan-out: connected to NATS');
    if (settings.publisher) {
      publisher = new Publisher({
        nc: connection, connected: () => connected, names, source: sql, owner: settings.owner, lockTtlMs: options.lockTtlMs, intervalMs,
        snapshotEvery: settings.snapshotEvery, clock, logger: logger.child({ part: 'publisher' }),
      });
      publisher.start();
    }
  }, (err: unknown) => {
    logger.error({ err: errorMessage(err) }, 'fan-out: cannot connect to NATS; syncing from the database');
  });

  return {
    source,
    status: () => ({
      mode: source.mode,
      reason: source.reason,
      connected,
      head: nats?.headRevision ?? null,
      publishing: publisher?.status().publishing ?? false,
      rejected: nats?.rejected ?? 0,
      slotWaits: source.slotWaits,
    }),
    async stop() {
      stopped = true;
      await publisher?.stop();
      nats?.close();
      await nc?.close();
    },
  };
}
