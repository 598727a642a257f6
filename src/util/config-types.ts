// Value schemas (zod) that several modules' config sections share: a port, a duration in
// seconds, and a file path, which is marked so that the config loader resolves it against
// the config file's directory whichever module's key it is.
import { z } from 'zod';

export const port = z.number().int().min(0).max(65535);

/** A duration in seconds, fractions allowed. */
export const seconds = z.number().positive();

const FILE_PATHS = new WeakSet<z.core.$ZodType>();

/** A string naming a file or directory; relative ones are taken from the config file's directory. */
export function filePath(): z.ZodString {
  const schema = z.string();
  FILE_PATHS.add(schema);
  return schema;
}

/** Whether `schema` itself (not a wrapper around it) was made by `filePath`. */
export function isFilePath(schema: z.core.$ZodType): boolean {
  return FILE_PATHS.has(schema);
}
