// dns: the DNS server. Wire codec, the platform-name resolver, the per-message handler
// chain (platform names → next handler → REFUSED) and the UDP/TCP transport.
export { DnsHandler, type Client, type NextAnswer, type NextHandler, type Transport } from './handler.ts';
export { DnsServer, type ListenAddress } from './server.ts';
export { allocateAnswerCache } from './answer-cache.ts';
export { dnsThreads, startDns, type RunningDns } from './start.ts';
export { PlatformResolver } from './resolver.ts';
export * from './wire.ts';
export { TopologyStore, type TopologyStatus, type TopologyListener } from './topology.ts';
