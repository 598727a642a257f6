// Builds the view DNS answers from, straight from topology file text, for tests.
import { compileImage } from '../../src/image/builder.ts';
import { TopologyImage } from '../../src/image/image.ts';
import { parseTopology } from '../../src/control/reader.ts';
import type { AliasMap } from '../../src/image/instance.ts';
import { mergeAliases, TopologyView } from '../../src/image/view.ts';

export function viewOf(text: string, options: { domains?: string[]; aliases?: AliasMap } = {}): TopologyView {
  const read = parseTopology(text);
  if (!read.ok) throw new Error(read.error);
  const image = new TopologyImage(compileImage(read.topology));
  return new TopologyView(image, { domains: options.domains, aliases: mergeAliases(options.aliases ?? new Map<string, string[]>(), read.topology.aliases) });
}
