import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { clientLoop, getJson, openEcho, roundTrip } from '../helpers/client.ts';
import { startDaemon, tcpConfig, type Daemon } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';
import type { ResourcesJson } from '../helpers/resources.ts';
import { enableAcceptQueueMigration } from '../helpers/sysctl.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function echoBackends(n: number): Promise<TestBackend[]> {
  const started = await Promise.all(Array.from({ length: n }, async () => startBackend('echo')));
  for (const b of started) cleanups.push(async () => b.close());
  return started;
}

async function daemon(...args: Parameters<typeof startDaemon>): Promise<Daemon> {
  const started = await startDaemon(...args);
  cleanups.push(async () => started.stop('SIGKILL'));
  return started;
}

describe('zero-downtime handover', () => {
  it('a new process takes the ports over under a continuous client loop with zero failed connections', async () => {
    cleanups.push(enableAcceptQueueMigration());
    const backends = await echoBackends(2);
    const [port, adminPort] = await freePorts(2);
    const yaml = tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: backends.map((b) => b.address), workers: 2 });
    const old = await daemon(yaml, adminPort!);

    const loop = clientLoop(port!, 8);
    // Traffic flows through the old process before, and through the new one after.
    await loop.after(200);
    const successor = await daemon('', adminPort!, { configFile: old.configFile, args: ['--takeover'] });
    expect(await old.exited).toBe(0);
    await loop.after(200);
    const { ok, failed } = await loop.stop();

    console.log(`handover: ${ok} connections succeeded, ${failed.length} failed, from before the new instance started to after the old one exited`);
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThanOrEqual(400);
    expect(old.logs.some((l) => l.msg === 'drained; exiting')).toBe(true);
    expect((await fetch(`${successor.adminUrl}/readyz`)).status).toBe(200);
  });
});

describe('worker faults', () => {
  it('replaces a crashed data-plane worker; the other worker keeps its connections and clients see no failure after', async () => {
    cleanups.push(enableAcceptQueueMigration());
    const [echo] = await echoBackends(1);
    const [port, adminPort] = await freePorts(2);
    const d = await daemon(tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: [echo!.address], workers: 2 }), adminPort!, {
      env: { SLUICE_FAULT_INJECTION: '1' },
    });
    const held = await Promise.all(Array.from({ length: 20 }, async () => openEcho(port!)));
    for (const c of held) expect(await c.exchange('hello')).toBe('hello');
    const before = await getJson<ResourcesJson>(`${d.adminUrl}/debug/resources`);
    const onCrashed = before.workers.find((w) => w.worker === 0)?.connections ?? 0;
    const onSurvivor = before.workers.find((w) => w.worker === 1)?.connections ?? 0;
    expect(onCrashed + onSurvivor).toBe(20);

    expect((await fetch(`${d.adminUrl}/debug/workers/0/crash`, { method: 'POST' })).status).toBe(202);
    await d.waitForLog((l) => l.msg === 'data-plane worker restarted' && l['worker'] === 0);

    // The dead worker's connections fail on their close (an event); the bound is for a hang.
    const survived = await Promise.all(held.map(async (c) => c.exchange('still there?', 20_000).then(() => true, () => false)));
    expect(survived.filter(Boolean).length).toBe(onSurvivor);
    expect(d.logs.some((l) => l.msg === 'data-plane worker crashed')).toBe(true);

    const loop = clientLoop(port!, 4);
    // Enough connections that both workers, the restarted one included, take some.
    await loop.after(100);
    const { ok, failed } = await loop.stop();
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThanOrEqual(100);
    const after = await getJson<ResourcesJson>(`${d.adminUrl}/debug/resources`);
    expect(after.workers.map((w) => w.worker).sort()).toEqual([0, 1]);
    for (const c of held) c.socket.destroy();
  });

  it('keeps routing while the control plane restarts, and the restarted one continues the snapshot versions', async () => {
    const [echo] = await echoBackends(1);
    const [port, adminPort] = await freePorts(2);
    const d = await daemon(tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: [echo!.address], workers: 2 }), adminPort!, {
      env: { SLUICE_FAULT_INJECTION: '1' },
    });
    const before = await getJson<{ version: number }>(`${d.adminUrl}/snapshot`);
    const loop = clientLoop(port!, 4);
    expect((await fetch(`${d.adminUrl}/debug/controlplane/crash`, { method: 'POST' })).status).toBe(202);
    await d.waitForLog((l) => l.msg === 'control plane ready' && (l['version'] as number) > before.version);
    const { ok, failed } = await loop.stop();
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(0);
    const after = await getJson<{ version: number; clusters: unknown }>(`${d.adminUrl}/snapshot`);
    expect(after.version).toBeGreaterThan(before.version);
    expect(after.clusters).toEqual((before as unknown as { clusters: unknown }).clusters);
    expect((await roundTrip(port!, Buffer.from('after'))).toString()).toBe('after');
  });
});
