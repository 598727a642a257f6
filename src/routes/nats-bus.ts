// The NATS side of the route emitter, kept thin: connect (and keep reconnecting
// forever), publish, subscribe, and tell the emitter each time a connection is up so it
// can re-publish everything. All decisions live in emitter.ts.
import { EventEmitter } from 'node:events';
import { connect, createInbox, Events, type ConnectionOptions, type NatsConnection } from 'nats';
import { systemClock, type Clock, type Timer } from '../clock.ts';
import type { Logger } from '../log.ts';
import { backgroundFailed } from '../util/background.ts';
import { natsConnectionOptions, type NatsSettings } from '../util/nats-options.ts';

/** What the emitter needs from a message bus. */
export interface RouteBus extends EventEmitter<{ connected: [] }> {
  readonly connected: boolean;
  /** Delivers every message on `subject` (a subscription outlives reconnects). */
  subscribe(subject: string, handler: (data: string) => void): void;
  /** Publishes now; false when NATS is unreachable and the message was dropped. */
  publish(subject: string, data: string, reply?: string): boolean;
  inbox(): string;
  /** Waits until what was published has reached the server, or `timeoutMs` passed. */
  flush(timeoutMs: number): Promise<void>;
}

const RETRY_FIRST_CONNECT_MS = 1000;

export class NatsBus extends EventEmitter<{ connected: [] }> implements RouteBus {
  private nc: NatsConnection | null = null;
  private readonly handlers = new Map<string, (data: string) => void>();
  private closed = false;
  private retry: Timer | null = null;
  private isConnected = false;
  /** Failed dials since the last connection: the first is a warning, the rest debug. */
  private failures = 0;

  private readonly options: ConnectionOptions & { servers: string[] };

  /** @throws NatsConfigError when the settings cannot work, before anything starts. */
  constructor(settings: NatsSettings, private readonly logger: Logger, private readonly clock: Clock = systemClock) {
    super();
    this.options = natsConnectionOptions(settings);
  }

  get connected(): boolean {
    return this.isConnected;
  }

  /** Starts connecting in the background; never fails, never gives up. */
  start(): void {
    this.dialInBackground();
  }

  subscribe(subject: string, handler: (data: string) => void): void {
    this.handlers.set(subject, handler);
    if (this.nc) this.attach(this.nc, subject, handler);
  }

  publish(subject: string, data: string, reply?: string): boolean {
    // While the client reconnects it would buffer publishes without bound; the emitter
    // re-publishes everything on reconnect anyway, so a dropped message loses nothing.
    if (!this.nc || !this.isConnected) return false;
    this.nc.publish(subject, data, reply ? { reply } : undefined);
    return true;
  }

  inbox(): string {
    return createInbox();
  }

  async flush(timeoutMs: number): Promise<void> {
    if (!this.nc || !this.isConnected) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.nc.flush().catch(() => undefined),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.retry?.cancel();
    this.isConnected = false;
    await this.nc?.close().catch(() => undefined);
  }

  private async dial(): Promise<void> {
    const options = this.options;
    const where = options.servers.join(',');
    let nc: NatsConnection;
    try {
      nc = await connect({
        ...options,
        name: 'presence-dns route-emitter',
        maxReconnectAttempts: -1,
        // Forever means forever: not even two auth failures in a row (a credential
        // rotation in progress) may make the client give up.
        ignoreAuthErrorAbort: true,
        reconnectTimeWait: 1000,
        // A half-open TCP connection is noticed within ~30 s instead of nats.js's 4 min.
        pingInterval: 10_000,
        maxPingOut: 3,
      });
    } catch (err) {
      if (this.closed) return;
      const level = this.failures++ === 0 ? 'warn' : 'debug';
      this.logger[level]({ nats: where, err: (err as Error).message, attempts: this.failures }, 'cannot connect to NATS; retrying every second');
      this.redial();
      return;
    }
    if (this.closed) {
      await nc.close();
      return;
    }
    this.nc = nc;
    this.failures = 0;
    for (const [subject, handler] of this.handlers) this.attach(nc, subject, handler);
    this.up(nc);
    this.watch(nc).catch((err: unknown) => {
      // The status stream broke: start over with a fresh connection.
      backgroundFailed('nats_status', err);
      this.isConnected = false;
      if (this.nc === nc) this.nc = null;
      nc.close().catch(() => undefined);
      if (!this.closed) this.redial();
    });
  }

  /** Dials; whatever throws past dial()'s own handling is reported and dialled again: forever means forever. */
  private dialInBackground(): void {
    this.dial().catch((err: unknown) => {
      backgroundFailed('nats_dial', err);
      if (!this.closed) this.redial();
    });
  }

  /** nats.js reconnects by itself, but not before its first connection nor after it closed. */
  private redial(): void {
    this.retry = this.clock.after(RETRY_FIRST_CONNECT_MS, () => this.dialInBackground());
  }

  private up(nc: NatsConnection): void {
    // nats.js can report one reconnect per failed attempt once it is through; one is news.
    if (this.isConnected) return;
    this.isConnected = true;
    this.logger.info({ nats: nc.getServer() }, 'connected to NATS');
    this.emit('connected');
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === Events.Disconnect) {
        this.isConnected = false;
        this.logger.warn({ nats: String(status.data) }, 'disconnected from NATS; reconnecting');
      } else if (status.type === Events.Reconnect) {
        this.up(nc);
      } else if (status.type === Events.Error) {
        this.logger.warn({ err: String(status.data) }, 'NATS error');
      }
    }
    // The status stream ends when the connection is closed for good.
    this.isConnected = false;
    this.nc = null;
    if (this.closed) return;
    this.logger.warn('NATS connection closed; connecting again');
    this.redial();
  }

  private attach(nc: NatsConnection, subject: string, handler: (data: string) => void): void {
    nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) this.logger.warn({ subject, err: err.message }, 'NATS subscription error');
        // A status message ("503 no responders" to a greet nobody listens to) is not data.
        else if (!msg.headers?.hasError) handler(msg.string());
      },
    });
  }
}
