// dns: the DNS server. The per-message handler chain (fast path → resolver → next
// handler → REFUSED), the platform-name resolver and the UDP/TCP transport; the wire
// format is src/codec/'s.
export { DnsHandler, type Client, type NextAnswer, type NextHandler, type Transport } from './handler.ts';
export { DnsServer, type ListenAddress } from './server.ts';
export { allocateAnswerCache } from './answer-cache.ts';
export { dnsThreads, startDns, type RunningDns } from './start.ts';
export { PlatformResolver } from './resolver.ts';
export { TopologyStore, type TopologyStatus, type TopologyListener } from './topology.ts';
