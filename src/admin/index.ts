// admin: the loopback HTTP API (/health, /ready, /metrics and module routes) and the
// Prometheus metrics registry every module counts into.
export { AdminServer, type AdminRequest, type AdminResponse, type ReadinessCheck, type RouteHandler } from './server.ts';
export { Registry, type Counter, type Gauge, type Histogram, type HotCounter, type HotHistogram } from './metrics.ts';
