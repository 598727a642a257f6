// admin: the loopback HTTP API (/health, /ready, /metrics and module routes) and the
// Prometheus metrics registry every module counts into.
export { AdminServer, type AdminRequest, type AdminResponse, type ReadinessCheck, type RouteHandler } from './server.ts';
export { Counter, Gauge, Histogram, Registry } from './metrics.ts';
