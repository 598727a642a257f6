// `presence-dns lookup NAME [TYPE]`: asks the daemon over DNS (dns2's client, so the
// answer is decoded by a parser independent of ours) and prints each answer's data one
// per line, as `dig +short` does. Exit 0 with answers, 1 without (NXDOMAIN, NODATA,
// REFUSED, SERVFAIL or no reply).
import type DNS from 'dns2';
import { ForwardError, parseUpstream } from '../forward/upstreams.ts';
import { CliFailure, expectPositionals, printJson, reachable, readConfigFor, text, UsageError, type Command } from './io.ts';

type Packet = DNS.Packet;
type Resource = Packet['answers'][number];

const TIMEOUT_MS = 3000;

const fqdn = (name: string | undefined) => (name ? (name.endsWith('.') ? name : `${name}.`) : '.');

/** One record's data as dig prints it; `type` is its type's name. */
export function recordData(r: Resource, type: string | undefined): string {
  switch (type) {
    case 'A':
    case 'AAAA':
      return r.address ?? '';
    case 'CNAME':
    case 'PTR':
    case 'NS':
      return fqdn(r.domain ?? r.ns);
    case 'SRV':
      return `${r.priority} ${r.weight} ${r.port} ${fqdn(r.target)}`;
    case 'MX':
      return `${r.priority} ${fqdn(r.exchange)}`;
    case 'TXT': {
      const parts = Array.isArray(r.data) ? r.data : [String(r.data ?? '')];
      return parts.map((p) => JSON.stringify(p)).join(' ');
    }
    case 'SOA':
      return `${fqdn(r.primary)} ${fqdn(r.admin)} ${r.serial} ${r.refresh} ${r.retry} ${r.expiration} ${r.minimum}`;
    default:
      return Buffer.isBuffer(r.data) ? `\\# ${r.data.length} ${r.data.toString('hex')}` : JSON.stringify(r.data ?? null);
  }
}

export const lookupCommand: Command = {
  name: 'lookup',
  usage: `usage: presence-dns lookup NAME [TYPE] [--server HOST[:PORT]] [--json]
  Asks the daemon NAME (TYPE: A by default; AAAA, SRV, PTR, TXT, ANY, …) over DNS and
  prints each answer's data on a line, like dig +short. Exit 0 with answers, 1 without.
options:
  --server HOST[:PORT]  the daemon's DNS address (default: the first dns.listen of --config,
                        else 127.0.0.1:5353, the built-in default)
  --config FILE         the daemon's config, for its dns.listen
  --json                print the rcode and every answer as JSON`,
  options: { server: { type: 'string' }, config: { type: 'string', short: 'c' }, json: { type: 'boolean' } },
  async run({ values, positionals }, io) {
    const [name, typeText = 'A'] = expectPositionals('lookup', positionals, ['a NAME', 'TYPE'], 1);
    // Loaded here only: the daemon itself never loads dns2.
    const { default: dns2 } = await import('dns2');
    const typeNames = new Map(Object.entries(dns2.Packet.TYPE).map(([name, code]) => [code as number, name]));
    const rcodeNames = new Map(Object.entries(dns2.Packet.RCODE).map(([name, code]) => [code as number, name]));
    const type = typeText.toUpperCase();
    if (!(type in dns2.Packet.TYPE)) throw new UsageError(`unknown record type "${typeText}" (A, AAAA, SRV, PTR, TXT, CNAME, NS, SOA, MX, ANY)`);
    let server: { host: string; port: number };
    const given = text(values, 'server');
    try {
      const listen = (await readConfigFor(values, io.env))?.dns.listen[0];
      server = given ? parseUpstream(given) : listen ? { host: reachable(listen.address), port: listen.port } : { host: '127.0.0.1', port: 5353 };
    } catch (err) {
      if (err instanceof ForwardError) throw new UsageError(`--server: ${err.reason}`);
      throw err;
    }
    const resolve = dns2.UDPClient({ dns: server.host, port: server.port, socketType: server.host.includes(':') ? 'udp6' : 'udp4', timeout: TIMEOUT_MS });
    let reply: Packet;
    try {
      reply = await resolve(name, type);
    } catch (err) {
      throw new CliFailure(`no answer from ${server.host}:${server.port} for ${name} ${type}: ${(err as Error).message}`);
    }
    const rcode = rcodeNames.get(reply.header.rcode) ?? String(reply.header.rcode);
    const answers = reply.answers.map((r) => ({ name: fqdn(r.name), type: typeNames.get(r.type) ?? String(r.type), ttl: r.ttl, data: recordData(r, typeNames.get(r.type)) }));
    if (values.json) printJson(io, { name: fqdn(name), type, rcode, answers });
    else {
      for (const a of answers) io.out(`${a.data}\n`);
      if (!answers.length) io.err(`${fqdn(name)} ${type}: ${rcode === 'NOERROR' ? 'no records (NODATA)' : rcode}\n`);
    }
    return answers.length ? 0 : 1;
  },
};
