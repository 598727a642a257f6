// `start` (run the daemon in the foreground) and `validate-config FILE` (check a config
// without starting). A bad config is a usage error (exit 2) naming the key.
import { fileURLToPath } from 'node:url';
import { loadConfigApart, type LoadOptions, type LoadedConfig } from '../config/index.ts';
import { expectPositionals, printJson, text, type Command } from './io.ts';

const DEFAULT_CONFIG = fileURLToPath(new URL('../../config/default.yaml', import.meta.url));

/** Runs the daemon until SIGTERM/SIGINT; resolves to the exit code. `source` reloads the config on SIGHUP. */
export type Serve = (loaded: LoadedConfig, source: LoadOptions) => Promise<number>;

export function startCommand(serve: Serve): Command {
  return {
    name: 'start',
    usage: `usage: presence-dns [start] [--config FILE] [--set key.path=value ...]
  Runs the daemon in the foreground (config/default.yaml without --config). PRESENCE_DNS_*
  environment variables and --set override the file. SIGHUP reloads, SIGTERM stops.`,
    options: { config: { type: 'string', short: 'c' }, set: { type: 'string', multiple: true } },
    async run({ values, positionals }, io) {
      expectPositionals('start', positionals, []);
      const overrides = (values.set ?? []) as string[];
      const source: LoadOptions = { file: text(values, 'config') ?? DEFAULT_CONFIG, env: io.env, overrides };
      return serve(await loadConfigApart(source), source);
    },
  };
}

export const validateConfigCommand: Command = {
  name: 'validate-config',
  usage: `usage: presence-dns validate-config FILE [--set key.path=value ...] [--json]
  Checks a config file (with PRESENCE_DNS_* and --set on top) without starting: exit 0 when
  valid, 2 naming each bad key otherwise.`,
  options: { set: { type: 'string', multiple: true }, json: { type: 'boolean' } },
  async run({ values, positionals }, io) {
    const [file] = expectPositionals('validate-config', positionals, ['a FILE']);
    const { loadConfig } = await import('../config/load.ts');
    const loaded = loadConfig({ file, env: io.env, overrides: (values.set ?? []) as string[] });
    if (values.json) printJson(io, { file: loaded.file, valid: true });
    else io.out(`${loaded.file}: configuration is valid\n`);
    return 0;
  },
};
