// Loaded with `node --import` into a spawned daemon, and so into each of its worker
// threads (a worker inherits the parent's execArgv): appends the name of every package
// the thread resolves a module from (once per thread) to the file named by
// RECORD_MODULES_TO, so a test can see which packages a config made it load.
import { appendFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const log = process.env.RECORD_MODULES_TO;
const MARK = '/node_modules/';
const seen = new Set<string>();

if (log) {
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      const at = resolved.url.lastIndexOf(MARK);
      if (at !== -1) {
        const [scope, name] = resolved.url.slice(at + MARK.length).split('/');
        const pkg = scope.startsWith('@') ? `${scope}/${name}` : scope;
        if (!seen.has(pkg)) {
          seen.add(pkg);
          appendFileSync(log, `${pkg}\n`);
        }
      }
      return resolved;
    },
  });
}
