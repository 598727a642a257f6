// The publisher: one node per presence database at a time (it holds the SQL TTL lock
// `sync-publisher`, taken over by the locket rule as the reaper's is) reads each change
// once from the database — NOTIFY on its own connection wakes it, polling is the baseline
// — and publishes it to NATS in revision order: one message per page of changes on
// `<prefix>.changes`, kept by a JetStream stream; its head every interval on
// `<prefix>.head`; and every `snapshot_every` changes a compacted snapshot to the object
// store. So the database does the same work per change however many nodes follow.
//
// The chain of messages is gapless (each starts where the one before ended) and written
// with JetStream's expected-last-sequence check, so a second publisher (a lock lost in a
// partition) cannot interleave: its publish fails and it reads where the chain stands. A
// publisher that takes over goes on from the stream's last message once the database
// still holds it; when the database lost rows (a restore, a failover to a replica behind)
// it starts a new epoch: a snapshot first, then a chain from that snapshot.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { DiscardPolicy, StorageType, type JetStreamManager, type NatsConnection, type ObjectStore } from 'nats';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { SqlChangeSource } from '../presence/change-source.ts';
import { LockWatch } from '../presence/decisions.ts';
import { PassLoop } from '../presence/loop.ts';
import type { PresenceRow } from '../presence/store.ts';
import { errorMessage } from '../util/error-message.ts';
import {
  decodeChange, encodeChange, encodeHead, FanoutProtocolError, snapshotHeaderLine, snapshotRowLine, snapshotTrailerLine, type ChangeMessage, type FanoutNames,
} from './protocol.ts';

export const PUBLISHER_LOCK = 'sync-publisher';
/** Rows per change message: a page of 500 rows stays far below NATS's 1 MB message limit. */
const PAGE_ROWS = 500;
/** Messages the stream keeps (oldest dropped first): many snapshots' worth of changes. */
const STREAM_MAX_MESSAGES = 200_000;
const STREAM_MAX_AGE_NS = 24 * 3600 * 1e9;
/** How long a change message may wait for the stream's acknowledgement. */
const PUBLISH_TIMEOUT_MS = 2000;
/** Re-publishing a message after a failover within this window is dropped by the stream. */
const DUPLICATE_WINDOW_NS = 120 * 1e9;

export interface PublisherOptions {
  nc: NatsConnection;
  /** False while cut off from the server: the pass keeps the lock and publishes nothing. Default: not closed. */
  connected?: () => boolean;
  names: FanoutNames;
  /** The database, on a direct connection (LISTEN works there): where changes are read once. */
  source: SqlChangeSource;
  owner: string;
  /** The lock's TTL (registrar.ttl). */
  lockTtlMs: number;
  /** How often the head is published and the database polled (sync.interval). */
  intervalMs: number;
  /** A snapshot every this many changed rows (sync.snapshot_every). */
  snapshotEvery: number;
  clock: Clock;
  logger: Logger;
  random?: () => number;
}

/** Where the published chain stands: its last message's end, and that message's stream sequence. */
interface Chain {
  cluster: string;
  epoch: string;
  revision: number;
  lastId: string | null;
  sequence: number;
}

export interface PublisherStatus {
  publishing: boolean;
  epoch: string | null;
  revision: number | null;
  /** Stream sequence of the last change message. */
  sequence: number | null;
}

export class Publisher {
  private readonly loop: PassLoop;
  private readonly lockWatch = new LockWatch();
  private holder = false;
  private lastRenewal = -Infinity;
  private chain: Chain | null = null;
  /** No snapshot of the current epoch is known to be published: the next pass publishes one. */
  private snapshotDue = true;
  private rowsSinceSnapshot = 0;
  private cluster: string | null = null;
  private jsm: JetStreamManager | null = null;
  private objects: ObjectStore | null = null;
  private unlisten: (() => Promise<void>) | null = null;

  constructor(private readonly options: PublisherOptions) {
    this.loop = new PassLoop(options.clock, () => this.pass(), { name: 'fanout publisher' });
  }

  status(): PublisherStatus {
    return {
      publishing: this.holder,
      epoch: this.chain?.epoch ?? null,
      revision: this.chain?.revision ?? null,
      sequence: this.chain?.sequence ?? null,
    };
  }

  start(): void {
    this.loop.start();
  }

  /** One pass now (tests step it themselves). */
  tick(): Promise<void> {
    return this.loop.kick();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
    await this.unlisten?.();
    this.unlisten = null;
    if (this.holder) {
      await this.options.source.store.releaseLock(PUBLISHER_LOCK, this.options.owner).catch((err: unknown) => {
        this.options.logger.warn({ err: errorMessage(err) }, 'could not release the publisher lock; it expires by its TTL');
      });
      this.holder = false;
    }
  }

  /** A pass; resolves to the wait before the next one. */
  private async pass(): Promise<number> {
    const { clock, intervalMs, lockTtlMs, random = Math.random } = this.options;
    if (!(await this.holdLock())) {
      // A candidate that does not hold the lock looks again about twice per TTL, not every second.
      return (lockTtlMs / 2) * (0.8 + 0.4 * random());
    }
    // Cut off from NATS: nothing could be published, and a publish would wait for its
    // timeout while the lock went unrenewed. The chain is read again once reconnected.
    if (!(this.options.connected?.() ?? !this.options.nc.isClosed())) {
      this.chain = null;
      return Math.min(intervalMs, lockTtlMs / 3);
    }
    try {
      await this.publish();
    } catch (err) {
      if (!/wrong last sequence/i.test(errorMessage(err))) throw err;
      // Someone else's message is at the end of the chain (two publishers for a moment, or a
      // stranger on the subject): go on from where the chain stands now.
      this.options.logger.warn('the stream has a message this publisher did not write; reading where the chain stands');
      this.chain = null;
      await this.publish();
    }
    if (clock.now() - this.lastRenewal >= lockTtlMs / 3) await this.holdLock();
    return Math.min(intervalMs, lockTtlMs / 3);
  }

  private async holdLock(): Promise<boolean> {
    const { source, owner, lockTtlMs, clock, logger } = this.options;
    if (this.holder && clock.now() - this.lastRenewal < lockTtlMs / 3) return true;
    const lock = await source.store.acquireLock(PUBLISHER_LOCK, owner, lockTtlMs, (holder) => this.lockWatch.expired(holder, clock.now()));
    if (lock === 'collision') {
      if (this.holder) logger.warn('lost the publisher lock to another node; no longer publishing');
      this.holder = false;
      this.chain = null;
      await this.unlisten?.();
      this.unlisten = null;
      return false;
    }
    if (!this.holder) logger.info('holding the publisher lock; publishing the presence changes to NATS');
    this.holder = true;
    this.lastRenewal = clock.now();
    return true;
  }

  private async publish(): Promise<void> {
    const { source, names, nc } = this.options;
    this.unlisten ??= await source.subscribe(() => void this.tick(), () => {
      this.unlisten = null;
    });
    this.cluster ??= await source.clusterId();
    const cluster = this.cluster;
    let chain = this.chain ?? (await this.resume(cluster));
    const plan = await source.plan({ revision: chain.revision, id: chain.lastId });
    if (plan.kind === 'snapshot') {
      this.options.logger.warn({ revision: chain.revision, cause: plan.cause }, 'the database no longer holds the published chain; starting a new epoch from a snapshot');
      chain = await this.startEpoch(cluster, chain.sequence);
    } else if (plan.kind === 'incremental') {
      chain = await this.publishChanges(chain);
    }
    if (this.rowsSinceSnapshot >= this.options.snapshotEvery || this.snapshotDue) {
      await this.publishSnapshot(cluster, chain.epoch);
      // Changes the snapshot saw go out before the head says where it stands.
      chain = await this.publishChanges(chain);
    }
    nc.publish(names.head, encodeHead({ cluster, epoch: chain.epoch, revision: chain.revision }));
  }

  /** Where the chain stands: the stream's last message, if the database still holds it; a new epoch otherwise. */
  private async resume(cluster: string): Promise<Chain> {
    const jsm = await this.manager();
    const { names, logger } = this.options;
    let last: ChangeMessage | null = null;
    let sequence = 0;
    try {
      const stored = await jsm.streams.getMessage(names.stream, { last_by_subj: names.changes });
      sequence = stored.seq;
      last = decodeChange(stored.data);
    } catch (err) {
      // Nothing published yet; or the last message is not a change (someone else published on
      // the subject: restrict it to the publishers with NATS permissions): a new chain after it.
      if (err instanceof FanoutProtocolError) logger.error({ err: err.message, sequence }, `the last message in ${names.stream} is not a change; starting a new epoch after it`);
      else if (!/no message found|not found/i.test(errorMessage(err))) throw err;
    }
    if (last?.cluster === cluster) {
      this.chain = { cluster, epoch: last.epoch, revision: last.to, lastId: last.lastId, sequence };
      const info = await (await this.objectStore()).info(names.object);
      // No snapshot of this epoch (lost, or never finished): the first pass publishes one.
      this.snapshotDue = info?.metadata?.epoch !== last.epoch;
      logger.info({ epoch: last.epoch, revision: last.to, sequence }, 'going on from the last published change');
      return this.chain;
    }
    if (last) logger.error({ cluster: last.cluster }, `the last message in ${names.stream} is of another presence database; starting a new epoch after it (give each database a sync.nats_prefix of its own)`);
    const info = await jsm.streams.info(names.stream);
    return this.startEpoch(cluster, info.state.last_seq);
  }

  /** A new chain: a snapshot under a new epoch, then an empty message that starts the chain at its revision. */
  private async startEpoch(cluster: string, sequence: number): Promise<Chain> {
    const epoch = randomUUID();
    const snap = await this.publishSnapshot(cluster, epoch);
    return this.append({ cluster, epoch, revision: snap.revision, lastId: snap.lastId, sequence }, []);
  }

  /** Every change after the chain's revision, a message per page. */
  private async publishChanges(start: Chain): Promise<Chain> {
    let chain = start;
    for (;;) {
      const rows = await this.options.source.changesSince(chain.revision, PAGE_ROWS);
      if (rows.length === 0) return chain;
      chain = await this.append(chain, rows);
      this.rowsSinceSnapshot += rows.length;
      if (rows.length < PAGE_ROWS) return chain;
    }
  }

  /** One message after `chain` (a chain's start when `rows` is empty), written only if the stream ends where the chain does. */
  private async append(chain: Chain, rows: PresenceRow[]): Promise<Chain> {
    const { nc, names } = this.options;
    const last = rows.at(-1);
    const to = last?.revision ?? chain.revision;
    const lastId = last?.id ?? chain.lastId;
    const message: ChangeMessage = { cluster: chain.cluster, epoch: chain.epoch, from: chain.revision, to, lastId, rows };
    const ack = await nc.jetstream().publish(names.changes, encodeChange(message), {
      msgID: `${chain.epoch}:${to}`,
      expect: { lastSequence: chain.sequence },
      // Well inside the lock's renewal period (ttl/3): a stuck publish never costs the lock.
      timeout: PUBLISH_TIMEOUT_MS,
    });
    this.chain = { ...chain, revision: to, lastId, sequence: ack.seq };
    return this.chain;
  }

  /** The whole live table, gzipped, one row per line between a header and a trailer, replacing the object. */
  private async publishSnapshot(cluster: string, epoch: string): Promise<{ revision: number; lastId: string | null }> {
    const { names, source, logger } = this.options;
    const objects = await this.objectStore();
    const gzip = createGzip();
    const put = objects.put(
      { name: names.object, metadata: { epoch, cluster } },
      Readable.toWeb(gzip) as ReadableStream<Uint8Array>,
    );
    let rows = 0;
    try {
      gzip.write(snapshotHeaderLine({ cluster, epoch }));
      // Rows go into the compressor as the database hands them over: the table is never held whole.
      const snap = await source.store.snapshot((row) => {
        gzip.write(snapshotRowLine(row));
        rows++;
      });
      gzip.end(snapshotTrailerLine({ revision: snap.revision, lastId: snap.lastId, rows }));
      const info = await put;
      this.snapshotDue = false;
      this.rowsSinceSnapshot = 0;
      logger.info({ epoch, revision: snap.revision, rows, bytes: info.size }, 'published a snapshot');
      return { revision: snap.revision, lastId: snap.lastId };
    } catch (err) {
      gzip.destroy(err as Error);
      await put.catch(() => undefined);
      throw err;
    }
  }

  private async manager(): Promise<JetStreamManager> {
    if (this.jsm) return this.jsm;
    const jsm = await this.options.nc.jetstreamManager();
    const { names } = this.options;
    const config = {
      name: names.stream, subjects: [names.changes], storage: StorageType.File, discard: DiscardPolicy.Old,
      max_msgs: STREAM_MAX_MESSAGES, max_age: STREAM_MAX_AGE_NS, duplicate_window: DUPLICATE_WINDOW_NS, allow_direct: true,
    };
    try {
      await jsm.streams.info(names.stream);
    } catch {
      await jsm.streams.add(config);
    }
    this.jsm = jsm;
    return jsm;
  }

  private async objectStore(): Promise<ObjectStore> {
    this.objects ??= await this.options.nc.jetstream().views.os(this.options.names.bucket, { storage: StorageType.File });
    return this.objects;
  }
}
