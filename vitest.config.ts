/**
 * `npm test` (`vitest run`) runs two projects, so one command covers both TCP data paths
 * (docs/data-plane-decisions.md):
 *
 * - `default`: every test, on the default data path (stream handles where the bindings
 *   exist; SLUICE_DATA_PATH unset). stream-handles.test.ts runs both paths itself.
 * - `net-path`: the TCP suites whose behaviour depends on what carries the bytes, again with
 *   SLUICE_DATA_PATH=net, the path every worker falls back to when a Node lacks the bindings.
 *   Chosen, not all twelve, to keep the whole run well under CI's 10 minutes (the twelve took
 *   ~200 s more on the loaded development machine, the default project ~450 s): half-close,
 *   back-pressure, connect timeout and retry (tcp-proxy, copy-loop), resets, idle timeout,
 *   the PROXY header in and out and the SNI prelude (proxy-protocol, sni), max_connections
 *   and the queue (limits), drain and the close of connections to a removed backend
 *   (lifecycle). Left out because the data path does not enter what they check: balancing
 *   (which backend is picked), edge-limits (acl and per-IP refusals, decided before a backend
 *   is contacted or a byte moves), access-log (its reasons are covered by resets and
 *   lifecycle), handover (listeners are net.Server on both paths), stream-handles (both paths).
 *   Run it alone: `npx vitest run --project net-path`.
 */
import { defineConfig } from 'vitest/config';

const NET_PATH_SUITES = 'test/integration/{tcp-proxy,copy-loop,resets,idle-timeout,proxy-protocol,sni,limits,lifecycle}.test.ts';

export default defineConfig({
  test: {
    // Tests wait on events, not on time, so a slow machine makes them slower but not wrong;
    // these limits only end a test that hangs. A test that needs longer says why, with its
    // own timeout argument. Daemon start-up (test/helpers/daemon.ts) has its own bound.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests start real daemons with one worker per core; running files in
    // parallel on a 2-core machine only adds noise to timing-sensitive socket tests.
    fileParallelism: false,
    reporters: ['default', './test/summary-reporter.ts'],
    // Each project names its own include: `extends: true` merges arrays, so an include here
    // would be appended to net-path's.
    projects: [
      { extends: true, test: { name: 'default', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'net-path', include: [NET_PATH_SUITES], env: { SLUICE_DATA_PATH: 'net' } } },
    ],
  },
});
