// The topology in service, on the DNS thread: the view DNS answers from, kept in step with
// the control plane (control/host.ts) — a new image put in service by swapping one
// reference, a delta applied in place, O(change). It hands every change on to the DNS
// worker threads (relays) and to the caches in front of the view (listeners), and tells
// the control plane when no thread reads an image buffer any more. Nothing here reads,
// parses or writes a file.
import type { Registry } from '../admin/metrics.ts';
import type { ControlPlane, ControlPlaneStatus, DataPlaneLink } from '../control/host.ts';
import type { CatchUp, SyncStatus, ViewMessage } from '../control/protocol.ts';
import type { TopologyView } from '../image/view.ts';
import type { Logger } from '../log.ts';
import { ViewFollower, type TopologyChange } from './follower.ts';

export interface TopologyStatus extends ControlPlaneStatus {
  loaded: boolean;
}

/** A change put in service; `stamp` numbers it, once for every thread that follows it (fastpath.ts). */
export type TopologyListener = (change: TopologyChange, stamp: number) => void;
/** Another thread following the same messages, each with its stamp. */
export type TopologyRelay = (message: ViewMessage, stamp: number) => void;

export interface TopologyStoreOptions {
  domains: string[];
  control: ControlPlane;
  logger: Logger;
  metrics: Registry;
}

export class TopologyStore implements DataPlaneLink {
  private readonly follower: ViewFollower;
  private readonly control: ControlPlane;
  /** Other threads following the same messages (the DNS workers). */
  private readonly relays: TopologyRelay[] = [];
  /** The last change's number: one sequence for the process, whatever topology worker sent it. */
  private stamp = 0;
  /** Which image buffer each thread answering DNS reads ('main', or a DNS worker's key). */
  private readonly holders = new Map<string, number>();
  private readonly listeners: TopologyListener[] = [];

  constructor(private readonly options: TopologyStoreOptions) {
    this.follower = new ViewFollower(options.domains);
    this.control = options.control;
    this.control.connect(this);
    options.metrics.gauge('presence_dns_topology_records', 'Instance records in the topology in service.', { collect: () => this.current?.recordCount ?? 0 });
    options.metrics.gauge('presence_dns_topology_revision', 'Version (revision) of the topology in service.', { collect: () => this.current?.version ?? 0 });
  }

  get current(): TopologyView | null {
    return this.follower.view;
  }

  /** Hands every image, delta and alias change on to `relay` too (a DNS worker), after `catchUp()`. */
  relay(relay: TopologyRelay): void {
    this.relays.push(relay);
  }

  /** The state a new follower starts from (null before the first image). */
  catchUp(): CatchUp | null {
    return this.follower.catchUp();
  }

  /**
   * Another thread (`key`) now reads the image buffer `bufferId`; the buffer it read
   * before goes back to the control plane for reuse once no thread reads it.
   */
  hold(key: string, bufferId: number | null): void {
    const before = this.holders.get(key);
    if (bufferId === null) this.holders.delete(key);
    else this.holders.set(key, bufferId);
    if (before === undefined || before === bufferId) return;
    for (const held of this.holders.values()) if (held === before) return;
    this.control.release(before);
  }

  /** Called on every change put in service (the DNS handler invalidates its cache). */
  onChange(listener: TopologyListener): void {
    this.listeners.push(listener);
  }

  status(): TopologyStatus {
    const view = this.current;
    const control = this.control.status();
    return {
      ...control,
      version: view?.version ?? null,
      records: view?.recordCount ?? 0,
      lastError: control.lastError ?? (view ? null : 'no topology loaded yet'),
      loaded: view !== null,
    };
  }

  syncStatus(): SyncStatus | null {
    return this.control.syncStatus();
  }

  receive(message: ViewMessage): void {
    const before = this.current;
    const change = this.follower.receive(message);
    const stamp = ++this.stamp;
    const view = this.current;
    if (!before && view) this.options.logger.info({ version: view.version, records: view.recordCount }, 'topology in service');
    for (const relay of this.relays) relay(message, stamp);
    if (change) for (const listener of this.listeners) listener(change, stamp);
    if (message.type === 'image') this.hold('main', message.bufferId);
  }
}
