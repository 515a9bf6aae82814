/**
 * `capacity: {backends: N}` through the shipped entry point: a daemon sized for 40,000
 * backends starts on ~30,000 generated static ones (past the 16,384 default), routes a
 * connection to the one real backend, in the last cluster (its counter slot is past the
 * default's last row), and answers PATCH; the same file without the key fails
 * `sluice validate` naming the limit and the key that raises it; a reload that changes the
 * key keeps the running value and says so.
 */
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { eventually, getJson, roundTrip } from '../helpers/client.ts';
import { runToExit, startDaemon, writeConfig } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const FILLER_CLUSTERS = 29;
const FILLER_BACKENDS = 1_034;
/** 29 × 1,034 + 1 = 29,987: past the 16,384 default, inside 40,000. */
const TOTAL = FILLER_CLUSTERS * FILLER_BACKENDS + 1;

/** Filler backends are never connected to: no health check, and no listener routes to them. */
function config(options: { adminPort: number; listenPort: number; backend: string; capacity?: number }): string {
  const filler = Array.from({ length: FILLER_CLUSTERS }, (_, c) => {
    const backends = Array.from({ length: FILLER_BACKENDS }, (_, b) => `      - {address: "127.0.${1 + Math.floor(b / 250)}.${1 + (b % 250)}:9"}`);
    return [`  - name: f${c}`, '    health_check: {type: none}', '    backends:', ...backends].join('\n');
  });
  const last = ['  - name: last', '    health_check: {type: none}', '    backends:', `      - {address: "${options.backend}"}`].join('\n');
  return [
    'workers: 1',
    ...(options.capacity === undefined ? [] : [`capacity: {backends: ${options.capacity}}`]),
    `admin: {listen: "127.0.0.1:${options.adminPort}"}`,
    'shutdown: {drain_timeout: 1s}',
    'listeners:',
    `  - {name: web, listen: "127.0.0.1:${options.listenPort}", cluster: last}`,
    'clusters:',
    ...filler,
    last,
    '',
  ].join('\n');
}

describe('capacity.backends', () => {
  it('a daemon sized for 40,000 backends starts on ~30,000, routes to the last cluster and answers PATCH', async () => {
    const backend = await startBackend('echo');
    cleanups.push(async () => backend.close());
    const [adminPort = 0, listenPort = 0] = await freePorts(2);
    const daemon = await startDaemon(config({ adminPort, listenPort, backend: backend.address, capacity: 40_000 }), adminPort);
    cleanups.push(async () => daemon.stop());

    const reply = await roundTrip(listenPort, Buffer.from('to the last cluster'));
    expect(reply.toString()).toBe('to the last cluster');

    const id = encodeURIComponent(`last:${backend.address}`);
    // Its counter row (slot 29,986, allocated in file order) is past the default's last one.
    const view = async (): Promise<{ weight: number; connections_total: number }> => getJson(`${daemon.adminUrl}/backends/${id}`);
    const seen = await eventually(view, (v) => v.connections_total === 1);
    expect(seen.weight).toBe(1);
    const patch = async (target: string, weight: number): Promise<{ status: number; body: { weight: number; snapshot_version: number } }> => {
      const response = await fetch(`${daemon.adminUrl}/backends/${target}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ weight }),
      });
      return { status: response.status, body: (await response.json()) as { weight: number; snapshot_version: number } };
    };
    const first = await patch(id, 3);
    expect(first.status).toBe(200);
    expect(first.body.weight).toBe(3);
    // A filler cluster's backend: another cluster's bytes change, the last cluster's are reused.
    const second = await patch(encodeURIComponent('f0:127.0.1.1:9'), 2);
    expect(second.status).toBe(200);
    expect(second.body.snapshot_version).toBe(first.body.snapshot_version + 1);
    expect((await view()).weight).toBe(3);
    expect((await roundTrip(listenPort, Buffer.from('still routed'))).toString()).toBe('still routed');

    // A reload that changes the key: the rest applies, the buffers keep their size.
    writeFileSync(daemon.configFile, config({ adminPort, listenPort, backend: backend.address, capacity: 50_000 }));
    const reload = await fetch(`${daemon.adminUrl}/config/reload`, { method: 'POST' });
    expect(reload.status).toBe(200);
    expect(((await reload.json()) as { ignored: string[] }).ignored).toEqual(['capacity.backends']);
  }, 90_000);

  it('the same file without the key fails sluice validate naming the limit and the key', async () => {
    const file = writeConfig(config({ adminPort: 19_999, listenPort: 19_998, backend: '127.0.0.1:9' }));
    const { code, stderr } = await runToExit(['validate', '--config', file]);
    expect(code).toBe(1);
    expect(stderr).toContain(
      `over a capacity limit:\n  backend_slots: needs ${TOTAL} backend counter slots, the limit is 16384 (capacity.backends; a removed backend keeps its slot until its connections closed)`,
    );
  }, 60_000);
});
