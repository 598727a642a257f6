// registrations: this node's instances — the files in `registrations.dir` (watched,
// validated whole, last good version kept per file), the entries put through the admin
// API (persisted in the same directory, so they survive a restart), the /v1/instances
// HTTP API (the CLI in src/cli/ wraps it). Consumers (registrar, route emitter)
// read the live set through RegistrationSource: `list()` and the `change` event.
export type { Registration, RouteRegistration, RegistrationSource, RegistrationOrigin } from './types.ts';
export { LIMITS, parseRegistration, parseRegistrationFile, RegistrationError, toEntry } from './validate.ts';
export {
  API_STATE_FILE, MAX_API_INSTANCES, RegistrationConflictError, RegistrationSet,
  type RegistrationSetOptions, type RegistrationSetStatus,
} from './set.ts';
export { INSTANCES_PATH, mountInstancesApi } from './api.ts';
