#!/usr/bin/env node
// The `presence-dns` command (and `npm start`): the compiled daemon and CLI in dist/
// (`npm run build`). Node's compile cache (in the OS temp dir) is turned on first, so a
// restart compiles none of the modules again; where it cannot be written it stays off.
import { enableCompileCache } from 'node:module';

enableCompileCache();
const { main } = await import('../dist/main.js');
process.exit(await main(process.argv.slice(2)));
