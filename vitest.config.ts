import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Integration tests start real daemons with one worker per core; running files in
    // parallel on a 2-core machine only adds noise to timing-sensitive socket tests.
    fileParallelism: false,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
