// This node's registrations through the admin API's /v1/instances: `instances
// list|get|put|delete`, and the shorthands `register FILE|-` and `deregister ID`. Entries
// to put are validated locally first, so a file with one bad entry sends nothing.
import { INSTANCES_PATH } from '../registrations/api.ts';
import { firstLine, isMapping, parseRegistration, RegistrationError } from '../registrations/validate.ts';
import { parseStructured } from '../util/structured-file.ts';
import {
  ADMIN_OPTIONS, ADMIN_OPTIONS_USAGE, AdminClient, expectPositionals, printJson, readSource, table, UsageError, type CliIo, type Command,
} from './io.ts';

/** Entries of a put: a file `{instances: [...]}` or one entry; all validated before any is sent. */
function entriesToPut(source: string, text: string): Array<{ id: string; entry: Record<string, unknown> }> {
  let doc: unknown;
  try {
    doc = parseStructured(source, text);
  } catch (err) {
    throw new RegistrationError(source, '(file)', `does not parse: ${firstLine(err)}`);
  }
  const list: unknown[] = isMapping(doc) && Array.isArray(doc.instances) && Object.keys(doc).length === 1 ? doc.instances : [doc];
  return list.map((entry, i) => {
    const where = entry === doc ? source : `${source}: instances[${i}]`;
    const { id } = parseRegistration(entry, where);
    return { id, entry: entry as Record<string, unknown> };
  });
}

const instancePath = (id: string) => `${INSTANCES_PATH}/${encodeURIComponent(id)}`;

function instancesTable(body: unknown): string {
  const instances = isMapping(body) && Array.isArray(body.instances) ? body.instances : [];
  const rows = [['ID', 'GROUP', 'NETWORK', 'DEPLOYMENT', 'IP', 'HEALTH', 'ORIGIN']];
  for (const item of instances) {
    if (!isMapping(item) || !isMapping(item.instance) || !isMapping(item.origin)) continue;
    const i = item.instance;
    const origin = item.origin.kind === 'file' ? `file ${String(item.origin.path)}` : 'api';
    rows.push([i.id, i.group, i.network, i.deployment, i.ip, i.health, origin].map(String));
  }
  return table(rows);
}

async function register(admin: AdminClient, source: string, io: CliIo, json: boolean): Promise<number> {
  const text = source === '-' ? await io.readStdin() : readSource(source);
  const registered: string[] = [];
  for (const { id, entry } of entriesToPut(source === '-' ? '(stdin)' : source, text)) {
    await admin.call('PUT', instancePath(id), entry);
    registered.push(id);
    if (!json) io.out(`registered ${id}\n`);
  }
  if (json) printJson(io, { registered });
  return 0;
}

async function deregister(admin: AdminClient, id: string, io: CliIo, json: boolean, word: string): Promise<number> {
  const { body } = await admin.call('DELETE', instancePath(id));
  if (json) printJson(io, body);
  else io.out(`${word} ${id}\n`);
  return 0;
}

export const instancesCommand: Command = {
  name: 'instances',
  usage: `usage:
  presence-dns instances list [--json]
  presence-dns instances get ID
  presence-dns instances put FILE|-        (one entry, or a file {instances: [...]}; YAML or JSON)
  presence-dns instances delete ID
options:
${ADMIN_OPTIONS_USAGE}`,
  options: ADMIN_OPTIONS,
  async run({ values, positionals }, io) {
    const [action, arg, extra] = [positionals.at(0), positionals.at(1) ?? '', positionals.at(2)];
    if (action !== 'list' && action !== 'get' && action !== 'put' && action !== 'delete') {
      throw new UsageError(action ? `unknown instances command "${action}"` : 'an instances command is needed');
    }
    const wantsArg = action !== 'list';
    if (wantsArg && positionals.length < 2) throw new UsageError(`instances ${action} needs ${action === 'put' ? 'a FILE (or - for stdin)' : 'an ID'}`);
    if ((!wantsArg && positionals.length > 1) || extra !== undefined) throw new UsageError(`unexpected argument "${wantsArg ? extra : arg}"`);
    const admin = await AdminClient.for(values, io.env);
    const json = values.json === true;
    switch (action) {
      case 'list': {
        const { body } = await admin.call('GET', INSTANCES_PATH);
        if (json) printJson(io, body);
        else io.out(instancesTable(body));
        return 0;
      }
      case 'get':
        printJson(io, (await admin.call('GET', instancePath(arg))).body);
        return 0;
      case 'put':
        return register(admin, arg, io, json);
      case 'delete':
        return deregister(admin, arg, io, json, 'deleted');
    }
  },
};

export const registerCommand: Command = {
  name: 'register',
  usage: `usage: presence-dns register FILE|-
  Registers the instances of FILE ({instances: [...]}, or one entry; YAML or JSON; - reads
  stdin) on the daemon through its admin API. Every entry is checked first: one bad entry
  sends nothing.
options:
${ADMIN_OPTIONS_USAGE}`,
  options: ADMIN_OPTIONS,
  async run({ values, positionals }, io) {
    const [source] = expectPositionals('register', positionals, ['a FILE (or - for stdin)']);
    return register(await AdminClient.for(values, io.env), source, io, values.json === true);
  },
};

export const deregisterCommand: Command = {
  name: 'deregister',
  usage: `usage: presence-dns deregister ID
  Removes the instance ID registered through the admin API (an instance of a file in
  registrations.dir is removed by editing that file).
options:
${ADMIN_OPTIONS_USAGE}`,
  options: ADMIN_OPTIONS,
  async run({ values, positionals }, io) {
    const [id] = expectPositionals('deregister', positionals, ['an ID']);
    return deregister(await AdminClient.for(values, io.env), id, io, values.json === true, 'deregistered');
  },
};
