// The binary image cached beside a snapshot (`<file>.image`), so a restart at 600 k
// instances answers within a second instead of parsing 75 MB of JSON first. Nothing read
// from it is trusted until it is verified: a header names the cache format, the snapshot it
// was built from (its size) and the image's length, and a CRC-32 covers the header and
// every byte of the image. A cache that fails is never served; the snapshot is read
// instead. A cache of another snapshot is only stale (the snapshot was rewritten since),
// which is normal and not an error.
//
// Layout (little-endian): magic "PDNC" u32 · cache format u32 · snapshot bytes u64 ·
// image bytes u64 · reserved u32 (0) · CRC-32 of every byte before it and of the image u32 · image.
// A later format may change what follows the header, never these 32 bytes.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { writeFileAtomicSync } from '../util/atomic-file.ts';
import { ImageFormatError, TopologyImage } from './image.ts';
import { IMAGE_MAGIC } from './layout.ts';

export const imageCachePath = (file: string) => `${file}.image`;

const CACHE_MAGIC = 0x434e4450; // "PDNC"
export const CACHE_FORMAT = 2;
const HEADER_BYTES = 32;
const CRC_AT = 28;

export function writeImageCache(file: string, image: TopologyImage, snapshotBytes: number): void {
  const bytes = new Uint8Array(image.buffer, 0, image.byteLength);
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(CACHE_MAGIC, 0);
  header.writeUInt32LE(CACHE_FORMAT, 4);
  header.writeBigUInt64LE(BigInt(snapshotBytes), 8);
  header.writeBigUInt64LE(BigInt(bytes.length), 16);
  header.writeUInt32LE(crc32(bytes, crc32(header.subarray(0, CRC_AT))), CRC_AT);
  writeFileAtomicSync(imageCachePath(file), [header, bytes]);
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
  } catch {
    // Not a readable file (a directory, an I/O error): not a snapshot of ours.
    return null;
  } finally {
    closeSync(fd);
  }
}

export type CacheRead =
  | { kind: 'image'; image: TopologyImage; head: SnapshotHead }
  /** No cache, no snapshot of ours, or a cache of another snapshot or format: the snapshot is read. */
  | { kind: 'none' }
  /** The cache failed verification: never served; `reason` says how. */
  | { kind: 'corrupt'; reason: string };

/** The verified cached image of `file`'s current snapshot. */
export function readImageCache(file: string, maxBytes = Number.MAX_SAFE_INTEGER): CacheRead {
  const head = snapshotHead(file);
  if (!head) return { kind: 'none' };
  let fd: number;
  try {
    fd = openSync(imageCachePath(file), 'r');
  } catch {
    return { kind: 'none' };
  }
  try {
    const size = fstatSync(fd).size;
    const header = Buffer.alloc(HEADER_BYTES);
    if (size < HEADER_BYTES || readSync(fd, header, 0, HEADER_BYTES, 0) !== HEADER_BYTES) return { kind: 'corrupt', reason: `${size} bytes, shorter than its header` };
    if (header.readUInt32LE(0) !== CACHE_MAGIC) {
      // The first cache format had no header of its own: 8 bytes, then the image. It is rebuilt, not an error.
      if (header.readUInt32LE(8) === IMAGE_MAGIC) return { kind: 'none' };
      return { kind: 'corrupt', reason: 'it does not start with the image cache magic' };
    }
    const imageBytes = Number(header.readBigUInt64LE(16));
    if (size !== HEADER_BYTES + imageBytes) return { kind: 'corrupt', reason: `${size} bytes, but its header says ${HEADER_BYTES + imageBytes} (truncated or grown)` };
    if (imageBytes > maxBytes) return { kind: 'corrupt', reason: `its image of ${imageBytes} bytes is over the limit of ${maxBytes}` };
    const buffer = new SharedArrayBuffer(imageBytes);
    const bytes = new Uint8Array(buffer);
    for (let read = 0; read < bytes.length;) {
      const n = readSync(fd, bytes, read, bytes.length - read, HEADER_BYTES + read);
      if (n === 0) return { kind: 'corrupt', reason: 'it ended while being read' };
      read += n;
    }
    // Every format with this magic keeps the header's first 32 bytes as they are here, so
    // the checksum is checked before the format: a damaged format word is damage.
    if (crc32(bytes, crc32(header.subarray(0, CRC_AT))) !== header.readUInt32LE(CRC_AT)) return { kind: 'corrupt', reason: 'its checksum does not match its bytes' };
    // Verified: a cache an older or newer daemon wrote, or one of another snapshot, is only stale.
    if (header.readUInt32LE(4) !== CACHE_FORMAT) return { kind: 'none' };
    if (Number(header.readBigUInt64LE(8)) !== head.bytes) return { kind: 'none' };
    const image = new TopologyImage(buffer);
    return image.version === head.version ? { kind: 'image', image, head } : { kind: 'none' };
  } catch (err) {
    // Verified bytes in an image format this daemon does not read: another version wrote it.
    if (err instanceof ImageFormatError) return { kind: 'none' };
    return { kind: 'corrupt', reason: `cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  } finally {
    closeSync(fd);
  }
}
