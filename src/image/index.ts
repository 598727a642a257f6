// image: the compiled topology, a leaf both planes import. The instance's fields
// (instance.ts), the image's byte layout, its builder and reader, the view over an image
// plus the changes since (view.ts), the query criteria a view answers (criteria.ts), the
// cache tags of what a change can alter, the pool that recycles image buffers and the
// verified image cache on disk.
export * from './criteria.ts';
export * from './instance.ts';
export { TopologyView, instanceName, emptyView, mergeAliases, type TopologyLookup, type TopologyDelta, type ViewChange } from './view.ts';
