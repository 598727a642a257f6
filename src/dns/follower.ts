// Following the topology worker on a data-plane thread: the view a thread answers from,
// kept in step with the images, deltas and alias changes the worker sends. The DNS thread
// (TopologyStore) and every DNS worker thread follow the same messages, so they answer
// from the same image (shared memory, never copied) at the same versions. A follower that
// starts late (a DNS worker started or restarted) begins from `catchUp()` of another.
import { tagsOf } from '../image/cache-tags.ts';
import { TopologyImage } from '../image/image.ts';
import type { CatchUp, ViewMessage } from '../control/protocol.ts';
import type { AliasMap } from '../image/instance.ts';
import { TopologyView, type TopologyDelta } from '../image/view.ts';

/** What a cache in front of the view must drop: everything, or the answers carrying these tags (cache-tags.ts). */
export type TopologyChange = 'replaced' | { tags: Iterable<number> };

export class ViewFollower {
  private current: TopologyView | null = null;
  private image: { buffer: SharedArrayBuffer; bufferId: number; seq: number } | null = null;
  /** Deltas since the image in service (bounded: the worker compacts them into a new image). */
  private deltas: TopologyDelta[] = [];
  private aliases: AliasMap = new Map();

  constructor(private readonly domains: string[]) {}

  get view(): TopologyView | null {
    return this.current;
  }

  /** The id of the image buffer the view reads (image-pool.ts), null before the first. */
  get bufferId(): number | null {
    return this.image?.bufferId ?? null;
  }

  /** Applies one message; returns what changed for the caches in front of the view. */
  receive(message: ViewMessage): TopologyChange | null {
    switch (message.type) {
      case 'image': {
        this.aliases = message.aliases;
        this.image = { buffer: message.buffer, bufferId: message.bufferId, seq: message.seq };
        this.deltas = [...message.deltas];
        this.current = this.viewOf(message.buffer, message.seq);
        for (const delta of message.deltas) this.current.apply(delta);
        if (message.change === 'replaced') return 'replaced';
        return message.change.length ? { tags: message.change } : null;
      }
      case 'delta': {
        if (!this.current) return null;
        this.deltas.push(message.delta);
        const change = this.current.apply(message.delta);
        return change.everything ? 'replaced' : { tags: tagsOf(change.instances) };
      }
      case 'aliases':
        this.aliases = message.aliases;
        this.current?.setAliases(message.aliases);
        return 'replaced';
    }
  }

  catchUp(): CatchUp | null {
    return this.image ? { ...this.image, aliases: this.aliases, deltas: [...this.deltas] } : null;
  }

  /** Starts from another follower's state. */
  start(from: CatchUp): void {
    this.aliases = from.aliases;
    this.image = { buffer: from.buffer, bufferId: from.bufferId, seq: from.seq };
    this.deltas = [];
    this.current = this.viewOf(from.buffer, from.seq);
    for (const delta of from.deltas) this.receive({ type: 'delta', delta });
  }

  private viewOf(buffer: SharedArrayBuffer, seq: number): TopologyView {
    const view = new TopologyView(new TopologyImage(buffer), { aliases: this.aliases, domains: this.domains });
    view.seq = seq;
    return view;
  }
}
