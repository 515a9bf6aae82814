/**
 * The Kubernetes discovery source against a simulated API server (test/helpers/
 * fake-kube-apiserver.ts), not a real cluster: real HTTP on 127.0.0.1, client-node's real
 * informer, the documented list + watch protocol and its failures.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createKubernetesSource, type KubernetesDiscoveryConfig, type SourceTimers } from '../../src/controlplane/discovery/kubernetes-source.ts';
import type { DiscoveredEndpoint, DiscoveryResult, DiscoverySource } from '../../src/controlplane/discovery/types.ts';
import { eventually } from '../helpers/client.ts';
import { endpointSlice, FakeKubeApiServer, type EndpointSliceJson } from '../helpers/fake-kube-apiserver.ts';

const READY = { ready: true, serving: true, terminating: false };
const TERMINATING = { ready: false, serving: true, terminating: true };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  vi.unstubAllEnvs();
});

async function apiServer(): Promise<FakeKubeApiServer> {
  const fake = await FakeKubeApiServer.start();
  cleanups.push(() => fake.close());
  return fake;
}

interface Running {
  readonly source: DiscoverySource;
  readonly reports: DiscoveryResult[];
  /** Timers the source has set and neither cleared nor seen fire. */
  readonly liveTimers: Set<NodeJS.Timeout>;
  /** Waits until the latest answer lists exactly `expected` (`address condition`, sorted). */
  answer(expected: string[]): Promise<void>;
  errors(): string[];
}

function run(config: Partial<KubernetesDiscoveryConfig> & { kubeconfig?: string | undefined }, backoffMs = 20): Running {
  const reports: DiscoveryResult[] = [];
  const liveTimers = new Set<NodeJS.Timeout>();
  const timers: SourceTimers = {
    setTimeout: (callback, ms) => {
      const timer = setTimeout(() => {
        liveTimers.delete(timer);
        callback();
      }, ms);
      liveTimers.add(timer);
      return timer;
    },
    clearTimeout: (timer) => {
      clearTimeout(timer);
      if (timer !== undefined) liveTimers.delete(timer);
    },
  };
  const source = createKubernetesSource(
    { namespace: 'shop', service: 'web', port: 'http', ...config },
    { coalesceMs: 10, backoff: { initialMs: backoffMs, maxMs: backoffMs * 4 }, random: () => 0.5, timers },
  );
  source.start((result) => reports.push(result));
  cleanups.push(() => source.stop());
  const latest = (): string[] | undefined => {
    const last = reports.findLast((r) => r.kind === 'answer');
    return last?.kind === 'answer' ? last.endpoints.map(summary) : undefined;
  };
  return {
    source,
    reports,
    liveTimers,
    answer: async (expected) => {
      const got = await eventually(() => Promise.resolve(latest()), (value) => JSON.stringify(value) === JSON.stringify(expected));
      expect(got).toEqual(expected);
    },
    errors: () => reports.flatMap((r) => (r.kind === 'error' ? [r.message] : [])),
  };
}

const summary = (e: DiscoveredEndpoint): string => `${e.address} ${e.condition}${e.weight === 1 && e.tier === 0 ? '' : ` w${e.weight} t${e.tier}`}`;
const web = (name: string, endpoints: EndpointSliceJson['endpoints'], options?: Parameters<typeof endpointSlice>[4]): EndpointSliceJson =>
  endpointSlice('shop', 'web', name, endpoints, options);

async function until(check: () => boolean): Promise<void> {
  expect(await eventually(() => Promise.resolve(check()), (ok) => ok)).toBe(true);
}

function resourceCount(kind: string): number {
  return process.getActiveResourcesInfo().filter((k) => k === kind).length;
}

describe('Kubernetes EndpointSlice discovery (simulated API server)', () => {
  it('reports every slice of the service after the initial list, deduplicated, and nothing of other services', async () => {
    const fake = await apiServer();
    fake.apply(web('web-a', [{ addresses: ['10.0.0.1'], conditions: READY }, { addresses: ['10.0.0.2'] }]));
    fake.apply(web('web-b', [{ addresses: ['10.0.0.2'], conditions: READY }, { addresses: ['10.0.0.3'], conditions: TERMINATING }]));
    fake.apply(web('web-v6', [{ addresses: ['fd00:0::7'] }], { addressType: 'IPv6' }));
    fake.apply(endpointSlice('shop', 'api', 'api-a', [{ addresses: ['10.0.9.1'] }]));
    fake.apply(endpointSlice('other', 'web', 'web-x', [{ addresses: ['10.0.8.1'] }]));

    const source = run({ kubeconfig: fake.kubeconfigPath });

    await source.answer(['10.0.0.1:8080 ready', '10.0.0.2:8080 ready', '10.0.0.3:8080 terminating', '[fd00::7]:8080 ready']);
    expect(source.reports[0]?.kind).toBe('answer');
    expect(source.errors()).toEqual([]);
    // The answer comes from the list; the watch that follows may still be on its way.
    await eventually(() => Promise.resolve(fake.requests.length), (n) => n >= 2);
    const [list, watch] = fake.requests;
    expect(list?.kind).toBe('list');
    expect(list?.query.get('labelSelector')).toBe('kubernetes.io/service-name=web');
    expect(watch?.kind).toBe('watch');
    expect(watch?.query.get('allowWatchBookmarks')).toBe('true');
    expect(watch?.query.get('resourceVersion')).toBe('6');
    // No pooled connection outlives its request (see kubernetes-source.ts).
    expect(fake.requests.map((r) => r.headers.connection)).toEqual(['close', 'close']);
  });

  it('an empty service is an answer with no endpoints', async () => {
    const fake = await apiServer();
    const source = run({ kubeconfig: fake.kubeconfigPath });
    await source.answer([]);
    expect(source.reports).toEqual([{ kind: 'answer', endpoints: [] }]);
  });

  it('follows the watch through a pod lifecycle: ready -> serving+terminating -> gone, then the slice deleted', async () => {
    const fake = await apiServer();
    fake.apply(web('web-a', [{ addresses: ['10.0.0.1'], conditions: READY }]));
    const source = run({ kubeconfig: fake.kubeconfigPath });
    await source.answer(['10.0.0.1:8080 ready']);
    await until(() => fake.openWatches() === 1);

    fake.apply(web('web-a', [{ addresses: ['10.0.0.1'], conditions: READY }, { addresses: ['10.0.0.2'], conditions: READY }]));
    await source.answer(['10.0.0.1:8080 ready', '10.0.0.2:8080 ready']);
    fake.apply(web('web-a', [{ addresses: ['10.0.0.1'], conditions: TERMINATING }, { addresses: ['10.0.0.2'], conditions: READY }]));
    await source.answer(['10.0.0.1:8080 terminating', '10.0.0.2:8080 ready']);
    fake.apply(web('web-a', [{ addresses: ['10.0.0.1'], conditions: { ready: false, serving: false, terminating: true } }, { addresses: ['10.0.0.2'] }]));
    await source.answer(['10.0.0.1:8080 not_ready', '10.0.0.2:8080 ready']);
    fake.apply(web('web-a', [{ addresses: ['10.0.0.2'] }]));
    await source.answer(['10.0.0.2:8080 ready']);
    fake.remove('shop', 'web-a');
    await source.answer([]);

    expect(fake.count('list')).toBe(1);
    expect(source.errors()).toEqual([]);
  });

  it('a relabelled slice leaves the answer (the watch filter turns it into DELETED)', async () => {
    const fake = await apiServer();
    fake.apply(web('web-a', [{ addresses: ['10.0.0.1'] }]));
    fake.apply(web('web-b', [{ addresses: ['10.0.0.2'] }]));
    const source = run({ kubeconfig: fake.kubeconfigPath });
    await source.answer(['10.0.0.1:8080 ready', '10.0.0.2:8080 ready']);
    fake.apply(endpointSlice('shop', 'api', 'web-b', [{ addresses: ['10.0.0.2'] }]));
    await source.answer(['10.0.0.1:8080 ready']);
  });

  it.each<[string, 'event' | 'status']>([
    ['an ERROR event', 'event'],
    ['an HTTP status', 'status'],
  ])('410 Gone as %s: re-lists, converges, and reports no error', async (_name, as) => {
    const fake = await apiServer();
    fake.apply(web('web-a', [{ addresses: ['10.0.0.1'] }]));
    fake.apply(web('web-b', [{ addresses: ['10.0.0.2'] }]));
    const source = run({ kubeconfig: fake.kubeconfigPath });
    await source.answer(['10.0.0.1:8080 ready', '10.0.0.2:8080 ready']);
    await until(() => fake.openWatches() === 1);

    // Changes the watch never hears of: only the re-list can find them.
    fake.expire(as, () => {
      fake.remove('shop', 'web-a');
      fake.apply(web('web-c', [{ addresses: ['10.0.0.3'], conditions: TERMINATING }]));
    });

    await source.answer(['10.0.0.2:8080 ready', '10.0.0.3:8080 terminating']);
    expect(fake.count('list')).toBe(2);
    expect(source.errors()).toEqual([]);
    await until(() => fake.openWatches() === 1);
  });

  it('a 500 on the watch is reported; a fresh informer re-lists and converges', async () => {
    const fake = await apiServer();
    fake.apply(web('web-a', [{ addresses: ['10.0.0.1'] }]));
    const source = run({ kubeconfig: fake.kubeconfigPath });
    await source.answer(['10.0.0.1:8080 ready']);
    await until(() => fake.openWatches() === 1);

    fake.failNext('watch', 500, 2);
    fake.endWatches();
    await until(() => source.errors().length >= 2);
    fake.apply(web('web-b', [{ addresses: ['10.0.0.2'] }]));

    await source.answer(['10.0.0.1:8080 ready', '10.0.0.2:8080 ready']);
    expect(source.errors().slice(0, 2)).toEqual([
      'kubernetes endpointslices of shop/web: watch failed: HTTP 500 Internal Server Error',
      'kubernetes endpointslices of shop/web: watch failed: HTTP 500 Internal Server Error',
    ]);
    await until(() => fake.openWatches() === 1);
    // The informer stops on the first 500 (client-node#795); only the restarts re-list.
    expect(fake.count('list')).toBe(3);
  });

  it('a watch cut in the middle of an event is reported; a fresh informer converges', async () => {
    const fake = await apiServer();
    fake.apply(web('web-a', [{ addresses: ['10.0.0.1'] }]));
    const source = run({ kubeconfig: fake.kubeconfigPath });
    await source.answer(['10.0.0.1:8080 ready']);
    await until(() => fake.openWatches() === 1);

    fake.cutWatches();
    await until(() => source.errors().length === 1);
    expect(source.errors()[0]).toMatch(/^kubernetes endpointslices of shop\/web: watch failed: terminated/);
    fake.apply(web('web-a', [{ addresses: ['10.0.0.1'], conditions: TERMINATING }]));

    await source.answer(['10.0.0.1:8080 terminating']);
    await until(() => fake.openWatches() === 1);
    expect(source.errors()).toHaveLength(1);
  });

  it('a failing list is reported and retried until it answers', async () => {
    const fake = await apiServer();
    fake.apply(web('web-a', [{ addresses: ['10.0.0.1'] }]));
    fake.failNext('list', 500, 2);
    const source = run({ kubeconfig: fake.kubeconfigPath });
    await source.answer(['10.0.0.1:8080 ready']);
    expect(source.reports.map((r) => r.kind)).toEqual(['error', 'error', 'answer']);
    expect(source.errors()[0]).toBe('kubernetes endpointslices of shop/web: list failed: HTTP 500: simulated failure of the list');
  });

  it('a watch resumes from the last BOOKMARK, not from the last change it saw', async () => {
    const fake = await apiServer();
    fake.apply(web('web-a', [{ addresses: ['10.0.0.1'] }]));
    const source = run({ kubeconfig: fake.kubeconfigPath });
    await source.answer(['10.0.0.1:8080 ready']);
    await until(() => fake.openWatches() === 1);
    // Versions move on with changes this watch does not see (another service).
    fake.apply(endpointSlice('shop', 'api', 'api-a', [{ addresses: ['10.0.9.1'] }]));
    fake.apply(endpointSlice('shop', 'api', 'api-a', [{ addresses: ['10.0.9.2'] }]));
    fake.bookmark();
    fake.endWatches();
    await until(() => fake.count('watch') === 2);
    expect(fake.requests.filter((r) => r.kind === 'watch').map((r) => r.query.get('resourceVersion'))).toEqual(['2', '4']);
    expect(source.errors()).toEqual([]);
  });

  it('an unreadable kubeconfig is reported as an error, with the path', async () => {
    const source = run({ kubeconfig: '/nonexistent/sluice-kubeconfig' });
    await until(() => source.errors().length >= 1);
    expect(source.errors()[0]).toMatch(/^kubernetes endpointslices of shop\/web: cannot load kubeconfig \/nonexistent\/sluice-kubeconfig: ENOENT/);
  });

  it('without a kubeconfig outside a pod, says how to fix it', async () => {
    vi.stubEnv('KUBERNETES_SERVICE_HOST', undefined);
    const source = run({ kubeconfig: undefined });
    await until(() => source.errors().length >= 1);
    expect(source.errors()[0]).toBe(
      'kubernetes endpointslices of shop/web: not in a Kubernetes pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset) and no discovery.kubeconfig given',
    );
  });

  describe('stop()', () => {
    async function stopsClean(fake: FakeKubeApiServer, source: Running, socketsBefore: number): Promise<void> {
      const requests = fake.requests.length;
      const reports = source.reports.length;
      await source.source.stop();
      // Timers are cleared by stop() itself; a destroyed socket's handle closes a loop turn later.
      expect(source.liveTimers.size).toBe(0);
      await until(() => fake.openConnections() === 0 && resourceCount('TCPSocketWrap') <= socketsBefore);
      // A change after stop reaches nobody: no request, no report.
      fake.apply(web('web-z', [{ addresses: ['10.0.0.99'] }]));
      fake.endWatches();
      expect(fake.requests.length).toBe(requests);
      expect(source.reports.length).toBe(reports);
    }

    const sockets = (): number => resourceCount('TCPSocketWrap');

    it('with a watch open leaves no socket, timer or watch behind', async () => {
      const fake = await apiServer();
      fake.apply(web('web-a', [{ addresses: ['10.0.0.1'] }]));
      const before = sockets();
      const source = run({ kubeconfig: fake.kubeconfigPath });
      await source.answer(['10.0.0.1:8080 ready']);
      await until(() => fake.openWatches() === 1 && fake.openConnections() === 1);
      await stopsClean(fake, source, before);
      expect(fake.openWatches()).toBe(0);
    });

    it('while the list is still unanswered leaves nothing behind and reports nothing', async () => {
      const fake = await apiServer();
      fake.stallNext('list');
      const before = sockets();
      const source = run({ kubeconfig: fake.kubeconfigPath });
      await until(() => fake.count('list') === 1);
      await stopsClean(fake, source, before);
      expect(source.reports).toEqual([]);
    });

    it('while a watch is connecting returns at once and closes the watch as soon as it connects', async () => {
      const fake = await apiServer();
      fake.stallNext('watch');
      const source = run({ kubeconfig: fake.kubeconfigPath });
      await source.answer([]);
      await until(() => fake.stalledRequests() === 1);
      const reports = source.reports.length;
      // stop() does not wait for the API server to answer (client-node's Watch would give up after 30 s).
      let stopped = false;
      const stopping = source.source.stop().then(() => (stopped = true));
      await until(() => stopped);
      await stopping;
      expect(fake.stalledRequests()).toBe(1);
      expect(source.liveTimers.size).toBe(0);
      fake.releaseStalled();
      await until(() => fake.openConnections() === 0);
      expect(fake.openWatches()).toBe(0);
      expect(fake.count('watch')).toBe(1);
      expect(source.reports.length).toBe(reports);
    });

    it('while waiting to restart after an error cancels the restart', async () => {
      const fake = await apiServer();
      fake.failNext('list', 500);
      const before = sockets();
      const source = run({ kubeconfig: fake.kubeconfigPath }, 60_000);
      await until(() => source.errors().length === 1);
      expect(source.liveTimers.size).toBe(1);
      await stopsClean(fake, source, before);
    });

    it("during client-node's own reconnect delay (a watch that keeps ending empty) cancels it", async () => {
      const fake = await apiServer();
      const before = sockets();
      const source = run({ kubeconfig: fake.kubeconfigPath });
      await source.answer([]);
      // Empty watch ends: client-node waits 1 s, then 2 s, ... before re-watching.
      for (let watches = 1; watches <= 2; watches++) {
        await until(() => fake.openWatches() === 1);
        fake.endWatches();
      }
      // The client has read the end of the second watch and is waiting on its delay timer.
      await until(() => fake.count('watch') === 2 && fake.openConnections() === 0 && source.liveTimers.size === 1);
      await stopsClean(fake, source, before);
    });
  });
});
