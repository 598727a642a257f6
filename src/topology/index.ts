// topology: the local cache of the platform's instances. Reading a topology file (ours
// or BOSH's records.json), indexing it once per version, the query criteria matched
// against that index, and the store that watches the file and swaps indexes.
export { parseTopology, readAliases, type ReadResult } from './reader.ts';
export { TopologyIndex, instanceName, type IndexOptions } from './topology-index.ts';
export { TopologyStore, type TopologyStatus } from './store.ts';
export { serializeTopology, writeFileAtomic, writeTopologyFile, type TopologyDocument, type TopologyRecord } from './writer.ts';
export * from './criteria.ts';
export * from './types.ts';
