// The binary image cached beside a snapshot (`<file>.image`), so a restart at 600 k
// instances answers within a second instead of parsing 75 MB of JSON first. It is trusted
// only for the exact snapshot it was built from: its first 8 bytes are that snapshot's
// size, and the image's own version must equal the version at the snapshot's head.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { TopologyImage } from './image.ts';
import { writeFileAtomicSync } from '../util/atomic-file.ts';
import { imageCachePath } from './writer.ts';

const PREFIX = 8;

export function writeImageCache(file: string, image: TopologyImage, snapshotBytes: number): void {
  const prefix = Buffer.alloc(PREFIX);
  prefix.writeBigUInt64LE(BigInt(snapshotBytes));
  writeFileAtomicSync(imageCachePath(file), [prefix, new Uint8Array(image.buffer, 0, image.byteLength)]);
}

export interface SnapshotHead {
  version: number;
  source: string;
  cluster: string;
  /** The snapshot's size. */
  bytes: number;
}

/** The metadata at the head of a snapshot our syncer wrote, read without parsing the rest; null for any other file. */
export function snapshotHead(file: string): SnapshotHead | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const head = Buffer.alloc(256);
    const n = readSync(fd, head, 0, head.length, 0);
    const m = /^\{"version":(\d+),"source":"([^"\\]*)","cluster":"([^"\\]*)",/.exec(head.toString('latin1', 0, n));
    return m ? { version: Number(m[1]), source: m[2], cluster: m[3], bytes: fstatSync(fd).size } : null;
  } finally {
    closeSync(fd);
  }
}

/** The cached image of `file`'s current snapshot, or null when there is none or it is stale. */
export function readImageCache(file: string): { image: TopologyImage; head: SnapshotHead } | null {
  const head = snapshotHead(file);
  if (!head) return null;
  let fd: number;
  try {
    fd = openSync(imageCachePath(file), 'r');
  } catch {
    return null;
  }
  try {
    const size = fstatSync(fd).size;
    if (size <= PREFIX) return null;
    const prefix = Buffer.alloc(PREFIX);
    readSync(fd, prefix, 0, PREFIX, 0);
    if (Number(prefix.readBigUInt64LE()) !== head.bytes) return null;
    const buffer = new SharedArrayBuffer(size - PREFIX);
    const bytes = new Uint8Array(buffer);
    for (let read = 0; read < bytes.length; ) {
      const n = readSync(fd, bytes, read, bytes.length - read, PREFIX + read);
      if (n === 0) return null;
      read += n;
    }
    const image = new TopologyImage(buffer);
    return image.version === head.version ? { image, head } : null;
  } catch {
    // A torn or foreign cache is only a missed shortcut: the snapshot is parsed instead.
    return null;
  } finally {
    closeSync(fd);
  }
}
