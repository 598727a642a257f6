// checks: local health checks (docs/health-checks.md). The node that runs an instance
// measures its health — an HTTP GET, a TCP connect or a command, per the registration's
// `check:` or `checks:` — and the result spreads to every node through the database,
// instead of every node polling every other (BOSH DNS's peer polling hit 100 % CPU at
// about 1,000 VMs). HealthChecks wraps the registration set as the registrar's
// RegistrationSource, with `health` set from the results; a result that changes nothing
// never reaches the database.
export { HealthChecks, MAX_CONCURRENT_CHECKS, type CheckStatus, type HealthChecksOptions } from './runner.ts';
export { combine, observe, UNCHECKED, type CheckState } from './state.ts';
export { probe, type ProbeResult } from './probes.ts';
