import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LazyKubernetesSource } from '../../../src/controlplane/discovery/sources.ts';
import type { DiscoveryResult, DiscoverySource } from '../../../src/controlplane/discovery/types.ts';
import type { KubernetesDiscoveryConfig } from '../../../src/shared/config/discovery-schema.ts';

const CONFIG = { type: 'kubernetes', namespace: 'shop', service: 'web', port: 'http' } as unknown as KubernetesDiscoveryConfig;

/** A source that records what was asked of it. */
function fakeSource(): DiscoverySource & { started: number; stopped: number } {
  return {
    started: 0,
    stopped: 0,
    start(report) {
      this.started++;
      report({ kind: 'answer', endpoints: [] });
    },
    stop() {
      this.stopped++;
      return Promise.resolve();
    },
  };
}

/** Starts the source and resolves with its reports once it reported once. */
function firstReport(source: DiscoverySource): Promise<DiscoveryResult[]> {
  const reports: DiscoveryResult[] = [];
  return new Promise((resolve) => {
    source.start((r) => {
      reports.push(r);
      resolve(reports);
    });
  });
}

describe('Kubernetes discovery loads its client only when used', () => {
  it('the control plane, imported, does not load @kubernetes/client-node', () => {
    // Records every module the thread resolves; the child imports the control plane as its worker does.
    const hook = `data:text/javascript,${encodeURIComponent(`
      import { registerHooks } from 'node:module';
      registerHooks({ resolve(s, c, next) { const r = next(s, c); if (r.url.includes('node_modules')) process.stderr.write('MODULE ' + r.url + '\\n'); return r; } });`)}`;
    const controlPlane = fileURLToPath(new URL('../../../src/controlplane/control-plane.ts', import.meta.url));
    const child = spawnSync(process.execPath, ['--import', hook, '--input-type=module', '-e', `await import(${JSON.stringify(controlPlane)});`], {
      encoding: 'utf8',
    });
    expect(child.status, child.stderr).toBe(0);
    expect(child.stderr).toContain('MODULE ');
    expect(child.stderr).not.toContain('@kubernetes/client-node');
  });

  it('starts the real source once loaded and stops it', async () => {
    const inner = fakeSource();
    const source = new LazyKubernetesSource(CONFIG, () => Promise.resolve({ createKubernetesSource: () => inner }));
    const reports = await firstReport(source);
    await source.stop();
    expect([inner.started, inner.stopped]).toEqual([1, 1]);
    expect(reports).toEqual([{ kind: 'answer', endpoints: [] }]);
  });

  it('a source stopped before its client loaded never starts', async () => {
    const inner = fakeSource();
    let finishLoad: () => void = () => undefined;
    const loaded = new Promise<void>((resolve) => {
      finishLoad = resolve;
    });
    const source = new LazyKubernetesSource(CONFIG, async () => {
      await loaded;
      return { createKubernetesSource: () => inner };
    });
    source.start(() => undefined);
    const stopping = source.stop();
    finishLoad();
    await stopping;
    expect([inner.started, inner.stopped]).toEqual([0, 0]);
  });

  it('a client that fails to load is reported as a source error', async () => {
    const source = new LazyKubernetesSource(CONFIG, () => Promise.reject(new Error('Cannot find package')));
    const reports = await firstReport(source);
    await source.stop();
    expect(reports).toEqual([{ kind: 'error', message: 'loading the Kubernetes client failed: Error: Cannot find package' }]);
  });
});
