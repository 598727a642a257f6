// The registrar: claims this node's cell, heartbeats it every ttl/3 (jittered) and keeps
// the cell's instance rows equal to the local registrations. A heartbeat that finds the
// cell gone, owned by someone else, or missing rows re-registers everything at once;
// failures retry with capped exponential backoff.
import { randomUUID } from 'node:crypto';
import type { Registry } from '../admin/metrics.ts';
import type { Logger } from '../log.ts';
import type { Registration, RegistrationSource } from '../registrations/types.ts';
import type { Clock } from '../clock.ts';
import { backoffDelay, heartbeatDelay } from './decisions.ts';
import type { PresenceStore } from './store.ts';
import { PassLoop } from './loop.ts';

export interface RegistrarOptions {
  store: PresenceStore;
  source: RegistrationSource;
  cellId: string;
  address: string | null;
  ttlMs: number;
  clock: Clock;
  logger: Logger;
  metrics: Registry;
  random?: () => number;
}

const BACKOFF_BASE_MS = 250;

export class Registrar {
  /** A fresh owner per process: a restarted daemon is a new owner of the same cell. */
  readonly owner = randomUUID();
  private registered = false;
  /** Registrations not yet known to be in the database. */
  private dirty = true;
  private failures = 0;
  private readonly loop: PassLoop;
  private readonly onChange = () => {
    this.dirty = true;
    void this.kick();
  };

  private readonly ownerLost;
  private readonly errors;

  constructor(private readonly options: RegistrarOptions) {
    this.loop = new PassLoop(options.clock, () => this.pass(), { name: 'registrar' });
    this.ownerLost = options.metrics.counter('presence_dns_registrar_reregistrations_total', 'Times the registrar found its cell or rows gone (tables emptied, another owner) and re-registered.');
    this.errors = options.metrics.counter('presence_dns_registrar_errors_total', 'Registrar database operations that failed and were retried with backoff.');
  }

  start(): void {
    this.options.source.on('change', this.onChange);
    this.loop.start();
  }

  async stop(): Promise<void> {
    this.options.source.off('change', this.onChange);
    await this.loop.stop();
  }

  /**
   * A clean shutdown: no more heartbeats, and the cell and its instances leave the
   * database at once (tombstoned), so other nodes drop them within a sync interval. A
   * database that is down leaves them to expire by the TTL.
   */
  async deregister(): Promise<void> {
    await this.stop();
    if (!this.registered) return;
    const { store, cellId, logger } = this.options;
    try {
      const tombstoned = await store.deregisterCell(cellId, this.owner);
      this.registered = false;
      if (tombstoned === null) logger.warn({ cellId }, 'cell already claimed by another process; left to it');
      else logger.info({ cellId, tombstoned }, 'cell deregistered; its instances are tombstoned');
    } catch (err) {
      logger.warn({ cellId, err: (err as Error).message }, 'could not deregister the cell (database down?); its instances expire by the TTL');
    }
  }

  /** One pass now (also what the timer runs); passes never overlap, a kick during one reruns it. */
  kick(): Promise<void> {
    return this.loop.kick();
  }

  /** Registers or heartbeats once; resolves to the delay before the next pass. */
  private async pass(): Promise<number> {
    const { store, cellId, logger, ttlMs } = this.options;
    let delay: number;
    try {
      if (!this.registered) {
        const { previousOwner } = await store.registerCell({ cellId, owner: this.owner, address: this.options.address, ttlMs });
        if (previousOwner && previousOwner !== this.owner) logger.info({ cellId, previousOwner }, 'cell claimed by this process');
        this.registered = true;
        this.dirty = true;
      } else {
        const beat = await store.heartbeat(cellId, this.owner);
        if (!beat) {
          this.ownerLost.inc();
          logger.error({ cellId }, 'cell row gone or claimed by another owner; re-registering the cell and its instances');
          this.registered = false;
          return await this.pass();
        }
        if (beat.liveInstances !== this.expectedRows()) {
          if (!this.dirty) {
            this.ownerLost.inc();
            logger.warn({ cellId, inDatabase: beat.liveInstances, expected: this.expectedRows() }, 'instance rows missing or extra; rewriting them');
          }
          this.dirty = true;
        }
      }
      if (this.dirty) {
        // Cleared before reading the list: a change arriving during the write marks it again.
        this.dirty = false;
        const result = await store.writeInstances(cellId, this.options.source.list());
        if (result.written || result.tombstoned) logger.info({ cellId, ...result }, 'instances written');
      }
      this.failures = 0;
      delay = heartbeatDelay(ttlMs, this.options.random);
    } catch (err) {
      this.dirty = true;
      this.failures++;
      this.errors.inc();
      delay = backoffDelay(this.failures, BACKOFF_BASE_MS, ttlMs / 3, this.options.random);
      logger.warn({ cellId, err: (err as Error).message, retryInMs: Math.round(delay) }, 'registrar database operation failed');
    }
    return delay;
  }

  private expectedRows(): number {
    return new Set(this.options.source.list().map((r: Registration) => r.id)).size;
  }
}
