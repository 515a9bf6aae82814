import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { eventually, getJson } from '../helpers/client.ts';
import { startDaemon, tcpConfig } from '../helpers/daemon.ts';
import { scrape, select, total } from '../helpers/metrics.ts';
import { freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const FAMILY = 'sluice_snapshot_propagation_seconds';

describe('snapshot propagation histogram', () => {
  it('every admin change is observed by each worker that takes the version in, and /metrics shows it', async () => {
    const backend = await startBackend('echo');
    cleanups.push(async () => backend.close());
    const [port, adminPort] = await freePorts(2);
    if (port === undefined || adminPort === undefined) throw new Error('no ports');
    const daemon = await startDaemon(tcpConfig({ listenPort: port, adminPort, backends: [backend.address], workers: 2 }), adminPort);
    cleanups.push(async () => daemon.stop('SIGKILL'));
    const [listed] = await getJson<{ id: string }[]>(`${daemon.adminUrl}/backends`);
    if (listed === undefined) throw new Error('no backend listed');
    const { id } = listed;
    const countNow = async (): Promise<number> => total(await scrape(daemon.adminUrl), `${FAMILY}_count`);
    // Both workers have taken the start-up versions in (each wakes on every publish).
    const before = await eventually(countNow, (n) => n >= 2);
    expect(before).toBeGreaterThanOrEqual(2);

    for (let weight = 2; weight <= 4; weight++) {
      const res = await fetch(`${daemon.adminUrl}/backends/${id}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ weight }),
      });
      expect(res.status).toBe(200);
    }
    // Three publishes, two workers: six observations, unless a worker slept through one
    // publish and took two versions in at once (then it observes the later one only).
    const after = await eventually(countNow, (n) => n >= before + 3 * 2 - 2);
    expect(after).toBeGreaterThanOrEqual(before + 3 * 2 - 2);
    expect(after).toBeLessThanOrEqual(before + 3 * 2);
    // One scrape for the rest: a worker that was still taking a version in when `after` was
    // read may have observed it since.
    const samples = await scrape(daemon.adminUrl);
    const count = total(samples, `${FAMILY}_count`);
    expect(count).toBeLessThanOrEqual(before + 3 * 2);
    const inf = select(samples, `${FAMILY}_bucket`, { le: '+Inf' });
    expect(inf).toHaveLength(1);
    expect(inf[0]?.value).toBe(count);
    // How fast is for bench/propagation.ts to say (a loaded machine stretches it); here only
    // that every observation landed in some bucket and took time.
    expect(total(samples, `${FAMILY}_sum`)).toBeGreaterThan(0);
  });
});
