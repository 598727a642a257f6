// The `registrations` config section: where this node's instance files live.
import { z } from 'zod';
import { filePath } from '../util/config-types.ts';

export const registrationsConfigSchema = z.strictObject({
  dir: filePath()
    .default('instances.d')
    .describe("Directory of this node's instance files (`*.yaml`, `*.yml`, `*.json`, watched); the API's registrations are kept in it too (`.api-instances.json`)."),
})
  .prefault({})
  .describe('This node\'s registrations: the instances it runs.');

export type RegistrationsConfig = z.infer<typeof registrationsConfigSchema>;
