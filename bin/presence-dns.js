#!/usr/bin/env node
// The `presence-dns` command: the compiled daemon and CLI in dist/ (`npm run build`).
import { main } from '../dist/main.js';

process.exit(await main(process.argv.slice(2)));
