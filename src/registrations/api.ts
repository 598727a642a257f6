// The admin HTTP API over the registration set: GET /v1/instances, GET/PUT/DELETE
// /v1/instances/:id. Bodies and answers use the file format's snake_case entry shape, so
// what GET returns can be edited and PUT back. Bad input → 400 {error, field}; nothing stored.
import type { AdminRequest, AdminResponse, AdminServer } from '../admin/index.ts';
import { RegistrationConflictError, type RegistrationSet } from './set.ts';
import type { Registration } from './types.ts';
import { RegistrationError, toEntry } from './validate.ts';

export const INSTANCES_PATH = '/v1/instances';

function view(set: RegistrationSet, registration: Registration): Record<string, unknown> {
  return { origin: set.origin(registration.id), instance: toEntry(registration) };
}

function error(status: number, message: string, field: string | null, code: string): AdminResponse {
  return { status, body: { error: message, field, code } };
}

async function handle(set: RegistrationSet, req: AdminRequest): Promise<AdminResponse> {
  if (req.params.length > 1) return error(404, `no such endpoint: ${req.path}`, null, 'NOT_FOUND');
  const id = req.params.at(0);
  if (id === undefined) {
    if (req.method !== 'GET') return error(405, `${req.method} ${INSTANCES_PATH}: use GET here, or PUT/DELETE ${INSTANCES_PATH}/:id`, null, 'METHOD_NOT_ALLOWED');
    return { status: 200, body: { instances: set.list().map((r) => view(set, r)) } };
  }
  switch (req.method) {
    case 'GET': {
      const registration = set.get(id);
      return registration ? { status: 200, body: view(set, registration) } : error(404, `no instance ${id} is registered on this node`, null, 'NOT_FOUND');
    }
    case 'PUT': {
      let text: string;
      try {
        text = await req.body();
      } catch (err) {
        return error(413, `cannot read the request body: ${(err as Error).message}`, '(body)', 'BODY_TOO_LARGE');
      }
      try {
        let entry: unknown;
        try {
          entry = JSON.parse(text);
        } catch (err) {
          throw new RegistrationError(`PUT ${INSTANCES_PATH}/${id}`, '(body)', `is not JSON: ${(err as Error).message}`);
        }
        return { status: 200, body: view(set, set.put(id, entry)) };
      } catch (err) {
        return rejected(err);
      }
    }
    case 'DELETE': {
      try {
        return set.delete(id)
          ? { status: 200, body: { deleted: id.toLowerCase() } }
          : error(404, `no instance ${id} is registered on this node`, null, 'NOT_FOUND');
      } catch (err) {
        return rejected(err);
      }
    }
    default:
      return error(405, `${req.method} ${INSTANCES_PATH}/:id: use GET, PUT or DELETE`, null, 'METHOD_NOT_ALLOWED');
  }
}

function rejected(err: unknown): AdminResponse {
  if (err instanceof RegistrationError) return error(400, err.message, err.field, err.code);
  if (err instanceof RegistrationConflictError) return error(409, err.message, err.field, err.code);
  throw err;
}

/**
 * Mounts GET /v1/instances, GET/PUT/DELETE /v1/instances/:id on the admin server, and a
 * `registrations` readiness entry (always ready; lists rejected files as the degraded detail).
 */
export function mountInstancesApi(admin: AdminServer, set: RegistrationSet): void {
  admin.route(INSTANCES_PATH, (req) => handle(set, req));
  admin.addReadinessCheck('registrations', () => ({ ready: true, detail: { ...set.status() } }));
}
