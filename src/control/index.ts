// control: the control plane. A worker thread (worker.ts, run by host.ts) reads the
// topology files (ours, with their journal and cached image, or BOSH's records.json) and
// follows the database (syncer.ts), keeps the topology state (state.ts), compiles
// images, writes the file, and sends the data plane finished images and small deltas.
// `startControlPlane` is the one way to start it, in that thread or in a test.
export { ControlPlane, type ControlPlaneOptions, type ControlPlaneStatus, type DataPlaneLink } from './host.ts';
export { startControlPlane, type ControlPlaneSetup, type RunningControlPlane, type SyncSetup } from './plane.ts';
export type { CatchUp, SyncStatus, ViewMessage } from './protocol.ts';
export { parseTopology, readAliases, type ReadResult } from './reader.ts';
