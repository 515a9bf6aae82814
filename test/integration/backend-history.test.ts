import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { eventually, getJson } from '../helpers/client.ts';
import { runToExit, startDaemon } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Transition {
  at: string;
  from: string;
  to: string;
  admin: string;
  reason: string;
  snapshot_version: number;
}

describe('GET /backends/:id/history', () => {
  it('tells when and why a backend went out and came back, with the snapshot version of each change', async () => {
    const backend = await startBackend('echo');
    cleanups.push(async () => backend.close());
    const [listenPort, adminPort] = (await freePorts(2)) as [number, number];
    const daemon = await startDaemon(
      `workers: 1
admin: {listen: 127.0.0.1:${adminPort}}
listeners: [{name: web, listen: 127.0.0.1:${listenPort}, cluster: web}]
clusters:
  - name: web
    health_check: {type: tcp, interval: 2s, timeout: 1s, rise: 1, fall: 1}
    backends: [{address: ${backend.address}}]
`,
      adminPort,
    );
    cleanups.push(async () => daemon.stop('SIGKILL'));
    const id = `web:${backend.address}`;
    const url = `${daemon.adminUrl}/backends/${encodeURIComponent(id)}/history`;

    const drained = await fetch(`${daemon.adminUrl}/backends/${encodeURIComponent(id)}/drain`, { method: 'POST' });
    const drainVersion = ((await drained.json()) as { snapshot_version: number }).snapshot_version;
    await fetch(`${daemon.adminUrl}/backends/${encodeURIComponent(id)}/undrain`, { method: 'POST' });

    const history = await eventually(
      async () => getJson<{ id: string; transitions: Transition[] }>(url),
      (h) => h.transitions.some((t) => t.from !== 'new' && t.to === 'healthy'),
    );
    expect(history.id).toBe(id);
    const [added, ...changes] = history.transitions;
    expect(added).toMatchObject({ from: 'new', to: 'healthy', admin: 'none' });
    expect(added?.reason).toMatch(/first probe passed/);
    expect(changes[0]).toMatchObject({ from: 'healthy', to: 'draining', admin: 'drain', snapshot_version: drainVersion });
    expect(changes.at(-1)).toMatchObject({ to: 'healthy', admin: 'none' });
    const versions = history.transitions.map((t) => t.snapshot_version);
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
    for (const t of history.transitions) expect(Number.isNaN(Date.parse(t.at))).toBe(false);

    const ctl = await runToExit(['ctl', '--admin', daemon.adminUrl, 'history', id]);
    expect(ctl.code).toBe(0);
    expect(ctl.stdout).toContain(`backend ${id}`);
    expect(ctl.stdout).toMatch(/healthy -> draining\s+drain\s+\d+/);

    // A failed probe takes it out: the reason carries the probe's result.
    await backend.close();
    const failed = await eventually(
      async () => getJson<{ transitions: Transition[] }>(url),
      (h) => h.transitions.some((t) => t.to === 'unhealthy'),
      30_000,
    );
    const out = failed.transitions.filter((t) => t.from === 'healthy' && t.admin === 'none').at(-1);
    expect(out?.reason).toMatch(/ECONNREFUSED|refused/i);

    const unknown = await fetch(`${daemon.adminUrl}/backends/${encodeURIComponent('web:127.0.0.1:1')}/history`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: 'NOT_FOUND' });
  });
});
