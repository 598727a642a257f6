import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: end-to-end files start daemons and databases; keep them from starving each other.
    maxWorkers: 2,
    // The fault suite's setup collects its scenarios' rows and prints the summary table.
    globalSetup: ['test/helpers/global-setup.ts', 'test/e2e/faults/global-setup.ts'],
  },
});
