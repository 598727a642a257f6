// The `topology` config section: the file the control plane reads (and, syncing, writes)
// and the bound on what it reads. Declared apart from the worker so that the config
// schema loads no control-plane code.
import { z } from 'zod';
import { filePath } from '../util/config-types.ts';

export const topologyConfigSchema = z.strictObject({
  file: filePath()
    .default('topology.json')
    .describe('The topology file DNS answers from: ours (written by the syncer, with its journal and cached image beside it) or a BOSH `records.json`.'),
  max_file_bytes: z.number().int().min(1024)
    .default(512 * 1024 * 1024)
    .describe('The largest topology file, journal or cached image read, bytes; a bigger one is rejected whole and the last good topology stays. 600 k instances make a snapshot of about 75 MB.'),
  inline_max_bytes: z.number().int().min(0)
    .default(64 * 1024)
    .describe('A node with no syncer whose topology file and journal stay within this many bytes reads them on its DNS thread instead of a worker thread of its own (about 25 MB less; such a file compiles in a few milliseconds: 1,000 records take about 5 ms). A bigger file moves the reading to the worker before it is read. 0: always a worker.'),
})
  .prefault({})
  .describe('The topology file DNS answers from.');

export type TopologyConfig = z.infer<typeof topologyConfigSchema>;
