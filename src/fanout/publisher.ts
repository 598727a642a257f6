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
import {
  decodeChange, encodeChange, encodeHead, snapshotHeaderLine, snapshotRowLine, snapshotTrailerLine, type ChangeMessage, type FanoutNames,
} from './protocol.ts';

export const PUBLISHER_LOCK = 'sync-publisher';
/** Rows per change message: a page of 500 rows stays far below NATS's 1 MB message limit. */
const PAGE_ROWS = 500;
/** Messages the stream keeps (oldest dropped first): many snapshots' worth of changes. */
const STREAM_MAX_MESSAGES = 200_000;
const STREAM_MAX_AGE_NS = 24 * 3600 * 1e9;
/** Re-publishing a message after a failover within this window is dropped by the stream. */
const DUPLICATE_WINDOW_NS = 120 * 1e9;

export interface PublisherOptions {
  nc: NatsConnection;
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

export interface PublisherStatus {
  publishing: boolean;
  epoch: string | null;
  revision: number | null;
  /** Stream sequence of the last change message. */
  sequence: number | null;
  snapshotRevision: number | null;
}

export class Publisher {
  private readonly loop: PassLoop;
  private readonly lockWatch = new LockWatch();
  private holder = false;
  private lastRenewal = -Infinity;
  private chain: { epoch: string; revision: number; lastId: string | null; sequence: number } | null = null;
  private snapshotRevision: number | null = null;
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
      snapshotRevision: this.snapshotRevision,
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
      await this.options.source.store.releaseLock(PUBLISHER_LOCK, this.options.owner).catch((err: Error) => {
        this.options.logger.warn({ err: err.message }, 'could not release the publisher lock; it expires by its TTL');
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
    try {
      await this.publish();
    } catch (err) {
      // Someone else's message is at the end of the chain (two publishers for a moment): read it again.
      if (/wrong last sequence/i.test((err as Error).message)) {
        this.options.logger.warn('another publisher wrote the stream; reading where the chain stands');
        this.chain = null;
      }
      throw err;
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
    const chain = this.chain ?? (await this.resume());
    const plan = await source.plan({ revision: chain.revision, id: chain.lastId });
    if (plan.kind === 'snapshot') {
      this.options.logger.warn({ revision: chain.revision, cause: plan.cause }, 'the database no longer holds the published chain; starting a new epoch from a snapshot');
      await this.startEpoch();
    } else if (plan.kind === 'incremental') {
      await this.publishChanges();
    }
    if (this.rowsSinceSnapshot >= this.options.snapshotEvery || this.snapshotRevision === null) {
      await this.publishSnapshot(this.chain!.epoch);
      // Changes the snapshot saw go out before the head says where it stands.
      await this.publishChanges();
    }
    nc.publish(names.head, encodeHead({ cluster: this.cluster, epoch: this.chain!.epoch, revision: this.chain!.revision }));
  }

  /** Where the chain stands: the stream's last message, if the database still holds it; a new epoch otherwise. */
  private async resume(): Promise<NonNullable<Publisher['chain']>> {
    const jsm = await this.manager();
    const { names, logger } = this.options;
    let last: ChangeMessage | null = null;
    let sequence = 0;
    try {
      const stored = await jsm.streams.getMessage(names.stream, { last_by_subj: names.changes });
      last = decodeChange(stored.data);
      sequence = stored.seq;
    } catch (err) {
      if (!/no message found|not found/i.test((err as Error).message)) throw err;
    }
    if (last && last.cluster === this.cluster) {
      this.chain = { epoch: last.epoch, revision: last.to, lastId: last.lastId, sequence };
      const objects = await this.objectStore();
      const info = await objects.info(names.object);
      // No snapshot of this epoch (lost, or never finished): the first pass publishes one.
      this.snapshotRevision = info?.metadata?.epoch === last.epoch ? 0 : null;
      logger.info({ epoch: last.epoch, revision: last.to, sequence }, 'going on from the last published change');
      return this.chain;
    }
    const info = await jsm.streams.info(names.stream);
    this.chain = { epoch: '', revision: 0, lastId: null, sequence: info.state.last_seq };
    await this.startEpoch();
    return this.chain;
  }

  /** A new chain: a snapshot under a new epoch, then an empty message that starts the chain at its revision. */
  private async startEpoch(): Promise<void> {
    const epoch = randomUUID();
    const snap = await this.publishSnapshot(epoch);
    await this.append({ cluster: this.cluster!, epoch, from: snap.revision, to: snap.revision, lastId: snap.lastId, rows: [] });
  }

  /** Every change after the chain's revision, a message per page. */
  private async publishChanges(): Promise<void> {
    const chain = this.chain!;
    for (;;) {
      const rows = await this.options.source.changesSince(chain.revision, PAGE_ROWS);
      if (rows.length === 0) return;
      const last = rows[rows.length - 1];
      await this.append({ cluster: this.cluster!, epoch: chain.epoch, from: chain.revision, to: last.revision, lastId: last.id, rows });
      this.rowsSinceSnapshot += rows.length;
      if (rows.length < PAGE_ROWS) return;
    }
  }

  private async append(message: ChangeMessage): Promise<void> {
    const { nc, names } = this.options;
    const ack = await nc.jetstream().publish(names.changes, encodeChange(message), {
      msgID: `${message.epoch}:${message.to}`,
      expect: { lastSequence: this.chain!.sequence },
    });
    this.chain = { epoch: message.epoch, revision: message.to, lastId: message.lastId ?? this.chain!.lastId, sequence: ack.seq };
  }

  /** The whole live table, gzipped, one row per line between a header and a trailer, replacing the object. */
  private async publishSnapshot(epoch: string): Promise<{ revision: number; lastId: string | null }> {
    const { names, source, logger } = this.options;
    const objects = await this.objectStore();
    const gzip = createGzip();
    const put = objects.put(
      { name: names.object, metadata: { epoch, cluster: this.cluster! } },
      Readable.toWeb(gzip) as ReadableStream<Uint8Array>,
    );
    let rows = 0;
    try {
      gzip.write(snapshotHeaderLine({ cluster: this.cluster!, epoch }));
      // Rows go into the compressor as the database hands them over: the table is never held whole.
      const snap = await source.store.snapshot((row) => {
        gzip.write(snapshotRowLine(row));
        rows++;
      });
      gzip.end(snapshotTrailerLine({ revision: snap.revision, lastId: snap.lastId, rows }));
      const info = await put;
      this.snapshotRevision = snap.revision;
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
