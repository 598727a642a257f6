// A node's side of the fan-out: the presence changes as the publisher put them on NATS.
// Live change messages arrive on a core subscription and wait in a short buffer; a gap
// (a message missed, a node that was away) is filled by reading the stream by sequence —
// a few short requests, never a standing consumer per node — and a node with nothing, or
// on another epoch, takes the published snapshot from the object store. The database is
// never read here: when this source cannot answer (NATS down, no publisher heard, a gap
// the stream no longer covers) it throws `FanoutUnavailable` and the fallback
// (fallback.ts) reads SQL instead.
import { createGunzip } from 'node:zlib';
import { pipeline, Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { JetStreamManager, NatsConnection, ObjectStore, Subscription } from 'nats';
import type { Clock } from '../clock.ts';
import { errorMessage } from '../util/error-message.ts';
import type { ChangeSource, SnapshotResult, SyncPlan } from '../presence/change-source.ts';
import type { SyncPosition } from '../presence/decisions.ts';
import type { PresenceRow } from '../presence/store.ts';
import {
  decodeChange, decodeHead, FanoutProtocolError, parseSnapshotHeader, parseSnapshotLine, type ChangeMessage, type FanoutNames,
  type SnapshotHeader, type SnapshotTrailer,
} from './protocol.ts';

/** This source cannot answer now; read the database instead (the reason is logged). */
export class FanoutUnavailable extends Error {
  readonly code = 'FANOUT_UNAVAILABLE';
}

/** Live messages kept for the syncer's next pass; past this, older ones are read from the stream again. */
const LIVE_BUFFER = 10_000;
/** The longest line a snapshot may have (a row is a few hundred bytes; NATS's messages are at most 1 MiB). */
const MAX_LINE_BYTES = 1024 * 1024;
/** A publisher silent for this many sync intervals is taken for gone. */
export const HEAD_MISSES = 3;

export interface FollowerOptions {
  nc: NatsConnection;
  names: FanoutNames;
  intervalMs: number;
  clock: Clock;
  /** False while the client is cut off from the server (between a disconnect and a reconnect). Default: not closed. */
  connected?: () => boolean;
}

interface Head {
  cluster: string;
  epoch: string;
  revision: number;
  /** When it was heard (clock ms). */
  at: number;
}

export class NatsChangeSource implements ChangeSource {
  readonly kind = 'nats';
  private head: Head | null = null;
  /** The epoch of what this node applied from here; null until it took a snapshot or adopted the head's. */
  private epoch: string | null = null;
  private live: ChangeMessage[] = [];
  /** The stream message last read by sequence, to read on from it without a search. */
  private cursor: { seq: number; to: number } | null = null;
  private subscriptions: Subscription[] = [];
  private wake: (() => void) | null = null;
  private jsm: JetStreamManager | null = null;
  private store: ObjectStore | null = null;
  /** Messages rejected by the protocol checks since start, and the last reason. */
  rejected = 0;
  lastRejection: string | null = null;

  /** When the connection was (re)established: the first head may take up to HEAD_MISSES intervals to come. */
  private connectedAt: number;

  constructor(private readonly options: FollowerOptions) {
    this.connectedAt = options.clock.now();
  }

  /** The client reached the server again: a head is due within a few intervals. */
  reconnected(): void {
    this.connectedAt = this.options.clock.now();
  }

  private connected(): boolean {
    return this.options.connected ? this.options.connected() : !this.options.nc.isClosed();
  }

  /** Starts listening (before the first pass, so nothing published meanwhile is missed). */
  listen(): void {
    const { nc, names } = this.options;
    this.subscriptions = [
      nc.subscribe(names.changes, { callback: (err, msg) => !err && this.onChange(msg.data) }),
      nc.subscribe(names.head, { callback: (err, msg) => !err && this.onHead(msg.data) }),
    ];
  }

  close(): void {
    for (const s of this.subscriptions) s.unsubscribe();
    this.subscriptions = [];
  }

  /** True while NATS is connected and a publisher was heard recently. */
  usable(): boolean {
    return this.connected() && this.head !== null && this.options.clock.now() - this.head.at <= HEAD_MISSES * this.options.intervalMs;
  }

  /**
   * Connected, no recent head, and connected too recently to tell: a node that has just
   * started (or reconnected) waits this long for the publisher before it reads the
   * database, so a fleet starting together does not stampede it.
   */
  awaitingHead(): boolean {
    const window = HEAD_MISSES * this.options.intervalMs;
    return this.connected() && !this.usable() && this.options.clock.now() - this.connectedAt < window;
  }

  /** The newest revision published, for `behind`; null before a publisher was heard. */
  get headRevision(): number | null {
    return this.head?.revision ?? null;
  }

  /** The epoch of the newest head heard; null before one. */
  get headEpoch(): string | null {
    return this.head?.epoch ?? null;
  }

  /** Takes `epoch` as the chain this node's position belongs to (the database said it still holds while `epoch` was announced). */
  adoptEpoch(epoch: string): void {
    this.epoch = epoch;
  }

  /** A chain's position was read from somewhere else (SQL): whatever epoch the node was on is unknown again. */
  forgetEpoch(): void {
    this.epoch = null;
  }

  get epochKnown(): boolean {
    return this.epoch !== null;
  }

  private onChange(data: Uint8Array): void {
    let message: ChangeMessage;
    try {
      message = decodeChange(data);
    } catch (err) {
      this.reject(err);
      return;
    }
    // The chain followed is the one the publisher's heads announce: before a head, nothing is
    // taken from a change message (the stream keeps it). A change of another database is
    // someone else's; one of another epoch is kept out of the buffer (a new epoch's first
    // messages come before its head; the stream has them once it arrives).
    if (!this.head) return;
    if (message.cluster !== this.head.cluster) {
      this.reject(new FanoutProtocolError(`change message of cluster ${message.cluster}, not the head's (${this.head.cluster})`));
      return;
    }
    if (message.epoch !== this.head.epoch) return;
    this.hear(message.cluster, message.epoch, message.to);
    if (this.live.length >= LIVE_BUFFER) this.live.shift();
    this.live.push(message);
    this.wake?.();
  }

  private onHead(data: Uint8Array): void {
    try {
      const head = decodeHead(data);
      const before = this.head?.revision;
      this.hear(head.cluster, head.epoch, head.revision);
      // A head beyond what arrived live means messages were missed: the next pass fills the gap.
      if (before === undefined || head.revision !== before) this.wake?.();
    } catch (err) {
      this.reject(err);
    }
  }

  private hear(cluster: string, epoch: string, revision: number): void {
    const now = this.options.clock.now();
    const before = this.head?.epoch === epoch ? this.head.revision : revision;
    this.head = { cluster, epoch, revision: Math.max(before, revision), at: now };
  }

  private reject(err: unknown): void {
    this.rejected++;
    this.lastRejection = errorMessage(err);
  }

  private requireHead(): Head {
    if (!this.connected()) throw new FanoutUnavailable('not connected to NATS');
    if (!this.usable() || !this.head) throw new FanoutUnavailable(`no publisher heard on ${this.options.names.head} for ${HEAD_MISSES} sync intervals`);
    return this.head;
  }

  clusterId(): Promise<string> {
    return Promise.resolve(this.requireHead().cluster);
  }

  async plan(position: SyncPosition): Promise<SyncPlan> {
    const head = this.requireHead();
    if (position.revision === null) return { kind: 'snapshot', cause: 'first' };
    // Within one epoch revisions only grow (the publisher starts a new epoch otherwise).
    if (this.epoch !== null && this.epoch !== head.epoch) return { kind: 'snapshot', cause: 'lost' };
    if (head.revision <= position.revision) return { kind: 'idle' };
    if (this.findLive(position.revision)) return { kind: 'incremental' };
    // The head is announced only after its changes are in the stream: nothing there means they are gone.
    const stored = await this.findStored(position.revision);
    if (stored !== null && stored !== 'gone') return { kind: 'incremental' };
    // Too far behind for the stream: the published snapshot, or (none) the database's changes.
    if (!(await this.snapshotInfo())) throw new FanoutUnavailable(`the stream no longer holds the changes after revision ${position.revision}, and no snapshot is published`);
    return { kind: 'snapshot', cause: 'behind' };
  }

  private async objectStore(): Promise<ObjectStore> {
    this.store ??= await this.options.nc.jetstream().views.os(this.options.names.bucket);
    return this.store;
  }

  private async snapshotInfo(): Promise<boolean> {
    const info = await (await this.objectStore()).info(this.options.names.object).catch(() => null);
    return info !== null && !info.deleted;
  }

  async changesSince(revision: number, limit: number): Promise<PresenceRow[]> {
    const head = this.requireHead();
    this.live = this.live.filter((m) => m.to > revision && m.epoch === head.epoch);
    const rows: PresenceRow[] = [];
    let at = revision;
    while (rows.length < limit && at < head.revision) {
      let message = this.findLive(at);
      if (!message) {
        const stored = await this.findStored(at);
        if (stored === 'gone') throw new FanoutUnavailable(`the stream ${this.options.names.stream} no longer holds the changes after revision ${at}`);
        if (stored === null) throw new FanoutUnavailable(`the stream ${this.options.names.stream} holds nothing after revision ${at}, though the publisher announced ${head.revision}`);
        message = stored;
      }
      if (message.epoch !== head.epoch) throw new FanoutUnavailable(`the stream holds epoch ${message.epoch} at revision ${at}, not ${head.epoch}`);
      for (const row of message.rows) if (row.revision > at) rows.push(row);
      at = message.to;
    }
    return rows;
  }

  /** The live message that goes on from `revision` (it starts at or before it and ends after). */
  private findLive(revision: number): ChangeMessage | null {
    return this.live.find((m) => m.from <= revision && m.to > revision && m.epoch === this.head?.epoch) ?? null;
  }

  /**
   * The stored message that goes on from `revision`: null when the stream has nothing
   * after it yet, 'gone' when the stream no longer reaches back to it. Reads on from the
   * last one read, or searches the stream by sequence (a few requests, no consumer).
   */
  private async findStored(revision: number): Promise<ChangeMessage | null | 'gone'> {
    const jsm = await this.manager();
    const { stream } = this.options.names;
    if (this.cursor?.to === revision) {
      const next = await this.read(jsm, this.cursor.seq + 1);
      if (next && next.from <= revision) return next;
    }
    let info;
    try {
      info = await jsm.streams.info(stream);
    } catch (err) {
      throw new FanoutUnavailable(`the stream ${stream} cannot be read: ${errorMessage(err)}`);
    }
    const last = info.state.last_seq;
    let low = info.state.first_seq;
    let high = last;
    if (info.state.messages === 0) return null;
    // The first message that ends after `revision`. A node that asks is usually near the
    // head (back from the database, or a message or two missed): it is bracketed from the
    // end with a doubling step — a few reads where a search of the whole stream takes
    // log2 of its length (18 at its limit, from every node of a fleet at once) — then bisected.
    let found: ChangeMessage | null = null;
    for (let step = 1; last - step + 1 > low; step *= 2) {
      const seq = last - step + 1;
      const message = await this.read(jsm, seq);
      if (message === null || message.to <= revision) {
        low = seq + 1;
        break;
      }
      found = message;
      high = seq - 1;
    }
    while (low <= high) {
      const mid = Math.floor((low + high) / 2);
      const message = await this.read(jsm, mid);
      if (message === null || message.to <= revision) low = mid + 1;
      else {
        found = message;
        high = mid - 1;
      }
    }
    if (found === null) return null;
    return found.from <= revision ? found : 'gone';
  }

  private async read(jsm: JetStreamManager, seq: number): Promise<ChangeMessage | null> {
    let stored;
    try {
      stored = await jsm.streams.getMessage(this.options.names.stream, { seq });
    } catch (err) {
      // A sequence past the end, or one deleted by the limits.
      if (/no message found|not found/i.test(errorMessage(err))) return null;
      throw new FanoutUnavailable(`reading ${this.options.names.stream} #${seq}: ${errorMessage(err)}`);
    }
    try {
      const message = decodeChange(stored.data);
      this.cursor = { seq, to: message.to };
      return message;
    } catch (err) {
      this.reject(err);
      throw new FanoutUnavailable(`${this.options.names.stream} #${seq} is not a valid change message: ${errorMessage(err)}`);
    }
  }

  private async manager(): Promise<JetStreamManager> {
    this.jsm ??= await this.options.nc.jetstreamManager();
    return this.jsm;
  }

  /**
   * The published snapshot, streamed: gunzipped and checked line by line, never held whole.
   * A read that gets no data for HEAD_MISSES intervals (a hung server, a link that drops
   * packets: the client may not notice for minutes) is abandoned, so the fallback reads the
   * database instead of waiting.
   */
  async snapshot(onRow: (row: PresenceRow) => void): Promise<SnapshotResult> {
    const head = this.requireHead();
    const { names, clock, intervalMs } = this.options;
    const object = await (await this.objectStore()).get(names.object);
    if (!object) throw new FanoutUnavailable(`no snapshot published in ${names.bucket}/${names.object} yet`);
    // pipeline passes an error on (an object that fails its digest) and destroys both streams on one (a stall).
    const lines = pipeline(Readable.fromWeb(object.data as WebReadableStream<Uint8Array>), createGunzip(), () => undefined);
    const what = `snapshot ${names.bucket}/${names.object}`;
    const stallMs = HEAD_MISSES * intervalMs;
    const stall = { hit: false };
    const onStall = () => {
      stall.hit = true;
      lines.destroy(new FanoutUnavailable(`${what}: no data for ${stallMs} ms; reading the database instead`));
    };
    let stallTimer = clock.after(stallMs, onStall);
    let header: SnapshotHeader | null = null;
    let trailer: SnapshotTrailer | null = null;
    let count = 0;
    let rest = '';
    try {
      for await (const chunk of lines) {
        stallTimer.cancel();
        stallTimer = clock.after(stallMs, onStall);
        const parts = (rest + (chunk as Buffer).toString('utf8')).split('\n');
        rest = parts.pop() ?? '';
        // A row is a few hundred bytes: a line without an end is not a snapshot, and is not held.
        if (rest.length > MAX_LINE_BYTES) throw new FanoutProtocolError(`${what}: a line longer than ${MAX_LINE_BYTES} bytes`);
        for (const line of parts) {
          if (trailer) throw new FanoutProtocolError(`${what}: data after its trailer`);
          if (header === null) {
            header = parseSnapshotHeader(line);
            if (header.cluster !== head.cluster) throw new FanoutProtocolError(`${what}: of cluster ${header.cluster}, not ${head.cluster}`);
            continue;
          }
          const parsed = parseSnapshotLine(line, what);
          if ('id' in parsed) {
            onRow(parsed);
            count++;
          } else trailer = parsed;
        }
      }
      const failed = await object.error;
      if (failed) throw failed;
      if (header === null || trailer === null || rest !== '' || count !== trailer.rows) {
        throw new FanoutProtocolError(`${what} is incomplete: ${count} rows${trailer ? ` of ${trailer.rows}` : ', no trailer'}`);
      }
    } catch (err) {
      // Not a bad message: nothing to count as refused.
      if (stall.hit) throw err;
      this.reject(err);
      throw new FanoutUnavailable(`${what} cannot be read: ${errorMessage(err)}`);
    } finally {
      stallTimer.cancel();
    }
    this.epoch = header.epoch;
    this.cursor = null;
    return { revision: trailer.revision, lastId: trailer.lastId };
  }

  subscribe(wake: () => void): Promise<() => Promise<void>> {
    this.setWake(wake);
    return Promise.resolve(() => {
      this.setWake(null);
      return Promise.resolve();
    });
  }

  /** What a change or a new head calls: the syncer's next pass. */
  setWake(wake: (() => void) | null): void {
    this.wake = wake;
  }
}
