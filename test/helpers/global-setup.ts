// Checks, once per run, that the external tools end-to-end tests drive are installed,
// so a missing tool fails loudly instead of as a confusing test error.
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  try {
    execFileSync('dig', ['-v'], { stdio: 'ignore' });
  } catch {
    throw new Error('`dig` is not installed (Debian: apt-get install -y bind9-dnsutils); end-to-end tests need it');
  }
}
