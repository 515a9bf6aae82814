import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests wait on events, not on time, so a slow machine makes them slower but not wrong;
    // these limits only end a test that hangs. A test that needs longer says why, with its
    // own timeout argument. Daemon start-up (test/helpers/daemon.ts) has its own bound.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests start real daemons with one worker per core; running files in
    // parallel on a 2-core machine only adds noise to timing-sensitive socket tests.
    fileParallelism: false,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
