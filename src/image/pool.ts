// Image buffers for reuse. An image is a SharedArrayBuffer that every thread answering
// DNS reads; its memory is freed only once each of those threads has garbage-collected its
// last reference, which a DNS thread doing little allocation may put off for minutes — a
// 600 k topology replaced every two seconds would pile up gigabytes meanwhile. So, as in
// read-copy-update, once every reader has moved to a newer image the old buffer comes
// back here (TopologyStore tells the worker) and the next image is built into it.

/** Spare buffers kept; more are let go. */
const SPARES = 1;

export class ImagePool {
  private readonly spare: SharedArrayBuffer[] = [];

  /** A buffer of at least `bytes`, its first `bytes` zeroed (a reused one, when one fits without wasting half). */
  take(bytes: number): SharedArrayBuffer {
    let best = -1;
    this.spare.forEach((b, k) => {
      if (b.byteLength >= bytes && b.byteLength <= bytes * 1.5 && (best < 0 || b.byteLength < this.spare[best].byteLength)) best = k;
    });
    if (best < 0) return new SharedArrayBuffer(bytes);
    const [buffer] = this.spare.splice(best, 1);
    new Uint8Array(buffer, 0, bytes).fill(0);
    return buffer;
  }

  /** A buffer no thread reads any more. */
  put(buffer: SharedArrayBuffer): void {
    this.spare.push(buffer);
    if (this.spare.length > SPARES) this.spare.sort((a, b) => b.byteLength - a.byteLength).splice(SPARES);
  }

  get size(): number {
    return this.spare.length;
  }
}
