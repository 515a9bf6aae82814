/**
 * Outlier ejection with back-off through the real daemon: a backend that keeps failing is
 * ejected for base_ejection_time × (ejections in a row), capped at max_ejection_time, so a
 * flapping backend is tried less and less often instead of at a fixed rhythm.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { eventually, getJson, readAll } from '../helpers/client.ts';
import { startDaemon, type Daemon, type LogLine } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface BackendJson {
  address: string;
  connect_failures_total: number;
}

/** Clients that connect, read the reply to its end and go again, until stopped. */
function steadyLoad(port: number, lanes: number): { stop: () => Promise<{ ok: number; failures: string[] }> } {
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const lane = async (): Promise<void> => {
    while (running) {
      try {
        await readAll(port);
        ok++;
      } catch (error) {
        failures.push(String(error));
      }
    }
  };
  const all = Promise.all(Array.from({ length: lanes }, lane));
  return {
    stop: async () => {
      running = false;
      await all;
      return { ok, failures };
    },
  };
}

function readmissions(daemon: Daemon, address: string): LogLine[] {
  return daemon.logs.filter((l) => l.msg === 'backend health changed' && l['backend'] === `web:${address}` && l['to'] === 'healthy');
}

describe('outlier ejection with back-off', () => {
  it('keeps a flapping backend out for base × ejections in a row, capped, while clients are served elsewhere', async () => {
    const good = await startBackend('name');
    cleanups.push(async () => good.close());
    const [port, adminPort, refusedPort] = await freePorts(3);
    const flapping = `127.0.0.1:${refusedPort!}`; // nothing listens: every connect is refused
    const yaml = `workers: 2
admin: {listen: 127.0.0.1:${adminPort!}}
shutdown: {drain_timeout: 1s}
listeners:
  - {name: web, listen: 127.0.0.1:${port!}, cluster: web}
clusters:
  - name: web
    passive: {consecutive_failures: 2}
    outlier: {base_ejection_time: 300ms, max_ejection_time: 900ms}
    backends:
      - {address: ${good.address}}
      - {address: ${flapping}}
`;
    const daemon = await startDaemon(yaml, adminPort!);
    cleanups.push(async () => daemon.stop('SIGKILL'));

    const load = steadyLoad(port!, 4);
    await eventually(async () => Promise.resolve(readmissions(daemon, flapping).length), (n) => n >= 5, 20_000);
    const { ok, failures } = await load.stop();

    // Every re-admission is followed at once by failures and a new, longer ejection.
    const reasons = readmissions(daemon, flapping)
      .slice(0, 5)
      .map((l) => l['reason']);
    expect(reasons).toEqual([
      're-admitted after a 300ms ejection',
      're-admitted after a 600ms ejection',
      're-admitted after a 900ms ejection',
      're-admitted after a 900ms ejection',
      're-admitted after a 900ms ejection',
    ]);
    // Clients never noticed: each failed connect was retried on the good backend.
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(0);
    // The flapping backend got a few connects per admission (until the next 100 ms passive
    // tick took it out again), not its half of the traffic.
    const bad = (await getJson<BackendJson[]>(`${daemon.adminUrl}/backends`)).find((b) => b.address === flapping);
    console.log(`outlier back-off: ${ok} clients served; ${bad?.connect_failures_total} connects tried on the flapping backend`);
    expect(bad?.connect_failures_total).toBeLessThan(ok / 4);
  });
});
