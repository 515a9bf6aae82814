/**
 * Kubernetes discovery end to end, against a SIMULATED API server (test/helpers/
 * fake-kube-apiserver.ts): no Kubernetes cluster runs here. The real daemon reads
 * EndpointSlices through client-node's informer and routes to real backends on 127.0.0.1.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { eventually, getJson, roundTrip } from '../helpers/client.ts';
import { startDaemon } from '../helpers/daemon.ts';
import { endpointSlice, FakeKubeApiServer } from '../helpers/fake-kube-apiserver.ts';
import { freePorts } from '../helpers/ports.ts';

const READY = { ready: true, serving: true, terminating: false };
const TERMINATING = { ready: false, serving: true, terminating: true };

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function nameBackend(): Promise<TestBackend> {
  const backend = await startBackend('name');
  cleanups.push(async () => backend.close());
  return backend;
}

describe('Kubernetes discovery through the daemon (simulated API server)', () => {
  it('routes to ready endpoints, to terminating ones only when nothing is ready, and drops endpoints gone from every slice', async () => {
    const [a, b] = [await nameBackend(), await nameBackend()];
    const fake = await FakeKubeApiServer.start();
    cleanups.push(async () => fake.close());
    // Two slices of one Service, one endpoint each: the source merges them.
    const ports = (backend: TestBackend) => [{ name: 'http', port: backend.port, protocol: 'TCP' }];
    fake.apply(endpointSlice('shop', 'web', 'web-a', [{ addresses: ['127.0.0.1'], conditions: READY }], { ports: ports(a) }));
    fake.apply(endpointSlice('shop', 'web', 'web-b', [{ addresses: ['127.0.0.1'], conditions: READY }], { ports: ports(b) }));
    const [listenPort, adminPort] = (await freePorts(2)) as [number, number];
    const daemon = await startDaemon(
      `workers: 1
admin: {listen: 127.0.0.1:${adminPort}}
listeners: [{name: web, listen: 127.0.0.1:${listenPort}, cluster: web}]
clusters:
  - name: web
    discovery: {type: kubernetes, namespace: shop, service: web, port: http, kubeconfig: ${JSON.stringify(fake.kubeconfigPath)}}
`,
      adminPort,
    );
    cleanups.push(async () => daemon.stop('SIGKILL'));
    const served = async (): Promise<string> => (await roundTrip(listenPort, Buffer.alloc(0))).toString();
    const states = async () => Object.fromEntries((await getJson<{ id: string; state: string }[]>(`${daemon.adminUrl}/backends`)).map((r) => [r.id, r.state]));

    await eventually(async () => (await fetch(`${daemon.adminUrl}/readyz`)).status, (s) => s === 200);
    const first = new Set<string>();
    for (let i = 0; i < 6; i++) first.add(await served());
    expect([...first].sort()).toEqual([a.address, b.address].sort());

    // a terminates (still serving): new connections go to b only.
    fake.apply(endpointSlice('shop', 'web', 'web-a', [{ addresses: ['127.0.0.1'], conditions: TERMINATING }], { ports: ports(a) }));
    await eventually(states, (s) => s[`web:${a.address}`] !== 'healthy');
    for (let i = 0; i < 4; i++) expect(await served()).toBe(b.address);

    // b's slice is deleted: nothing is ready, so the terminating a takes new connections.
    fake.remove('shop', 'web-b');
    await eventually(async () => served().catch(() => 'refused'), (who) => who === a.address, 15_000);
    await eventually(states, (s) => !(`web:${b.address}` in s), 15_000);
  });
});
