// codec: the DNS wire format, one module for every reader and writer of messages — the
// platform answerer (src/dns/) and the forwarder (src/forward/). A leaf: it imports only
// src/util/.
export * from './protocol.ts';
export { skipName, lowerCaseName, type Pointers } from './name.ts';
export { decodeQuery, type DecodedQuery, type DecodeResult, type Edns, type Question } from './query.ts';
export { edeOption, EdeCode, optSize, writeOpt, type EdnsOption, type OptRecord } from './edns.ts';
export {
  encodeBareReply, encodeResponse, replyFrame, type DnsResult, type EncodeOptions, type ReplyFrame, type ReplyOptions, type ResourceRecord,
} from './response.ts';
export { UnencodableError } from './writer.ts';
export { fastKey, FAST_KEY_BYTES, type FastQuestion } from './fast-key.ts';
