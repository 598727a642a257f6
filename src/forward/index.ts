// forward: the node-local resolver role. Names the platform resolver does
// not serve go to upstream recursors through a bounded cache that serves stale answers
// when the upstreams fail (RFC 8767); only allowed clients may recurse. Owns upstream
// selection and health, the answer cache, and the upstream sockets.
export { Forwarder, type ForwarderOptions } from './forwarder.ts';
export { ForwardError } from './upstreams.ts';
