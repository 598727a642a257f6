// topology: the platform's instances as DNS sees them (DESIGN §2.1, §3.2). The control
// plane — a worker thread (worker.ts) — reads the topology file (ours, with its journal,
// or BOSH's records.json), applies the syncer's changes, compiles images and writes the
// file; the data plane — the DNS thread — holds a view of the image (store.ts) and
// swaps or patches it in O(1) per change. Also the query criteria matched against it.
export { parseTopology, readAliases, type ReadResult } from './reader.ts';
export { TopologyStore, type TopologyStatus, type TopologyListener } from './store.ts';
export { ViewFollower, type CatchUp, type TopologyChange, type ViewMessage } from './follower.ts';
export { TopologyView, instanceName, emptyView, type TopologyLookup, type TopologyDelta, type ViewChange } from './view.ts';
export * from './criteria.ts';
export * from './types.ts';
