// The embedded PGlite's memory settings, applied by its thread (embedded-db-worker.ts)
// before it opens the database.
import { setFlagsFromString } from 'node:v8';
import { PGlite } from '@electric-sql/pglite';

/**
 * PGlite's memory settings, what `npm start` needs to stay near its 150 MB target (all
 * processes). Measured on one process that opens PGlite, migrates and runs 3,000
 * queries: 450–700 MB with PGlite's defaults.
 */
export const PGLITE_SETTINGS = {
  /**
   * V8 flags for WebAssembly (process-wide; PGlite is the only WebAssembly of note here):
   * compile PostgreSQL's module with the baseline compiler only. Tiering its hot
   * functions up to TurboFan cost 300–500 MB of compiled code; queries stay fast enough
   * for presence rows. The implied flags are spelled out: set at run time, V8 does not
   * derive them from --liftoff-only.
   */
  v8Flags: ['--liftoff-only', '--no-wasm-tier-up', '--no-wasm-dynamic-tiering'],
  /**
   * PostgreSQL settings (`-c` start parameters). shared_buffers lives in the wasm
   * memory and is touched as pages are read: 128 MB → 8 MB saved about 120 MB at open.
   * The per-operation memories are capped for a table of presence rows; together they
   * saved about 10 MB more.
   */
  postgres: { shared_buffers: '8MB', work_mem: '1MB', maintenance_work_mem: '8MB', temp_buffers: '1MB' },
} as const;

/** Sets PGlite's V8 flags and returns its PostgreSQL start parameters; call before PGlite.create. */
export function applyPgliteSettings(): string[] {
  setFlagsFromString(PGLITE_SETTINGS.v8Flags.join(' '));
  const settings = Object.entries(PGLITE_SETTINGS.postgres).flatMap(([key, value]) => ['-c', `${key}=${value}`]);
  return [...PGlite.defaultStartParams, ...settings];
}
