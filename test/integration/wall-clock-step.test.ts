/**
 * A step of the wall clock (NTP, an operator, a VM resumed) changes no data-plane timing:
 * the idle sweep and the queue deadlines run on a monotonic clock, and sticky-session
 * expiries on one shared by the workers. The proxy runs in this process with real sockets,
 * so the test can step `Date.now()` under it; the steps are observed through the shared
 * counters the sweep and the connect attempts write, never by waiting a fixed time.
 */
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SnapshotWriter } from '../../src/controlplane/snapshot-writer.ts';
import { AccessLog } from '../../src/dataplane/access-log.ts';
import { seededRandom } from '../../src/dataplane/balancer/random.ts';
import { Router } from '../../src/dataplane/router.ts';
import { TcpProxy } from '../../src/dataplane/tcp-proxy.ts';
import { ClusterState, createClusterStateBuffer } from '../../src/shared/cluster-state.ts';
import { BackendCounter, CounterTables, createCounterBuffer } from '../../src/shared/counters.ts';
import type { ListenerBinding } from '../../src/shared/messages.ts';
import { createSnapshotBuffer } from '../../src/shared/snapshot/layout.ts';
import { SnapshotReader } from '../../src/shared/snapshot/reader.ts';
import type { SnapshotBackend, SnapshotCluster } from '../../src/shared/snapshot/types.ts';
import { startBackend } from '../helpers/backends.ts';
import { eventually, openEcho, type EchoConnection } from '../helpers/client.ts';
import { freePort, freePorts } from '../helpers/ports.ts';
import { testBackend, testCluster, testListener } from '../helpers/snapshot.ts';

const HOUR_MS = 3_600_000;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** From now on, Date.now() reads an hour later than it did (the monotonic clock does not move). */
function stepWallClockForward(): void {
  const realNow = Date.now.bind(Date);
  vi.spyOn(Date, 'now').mockImplementation(() => realNow() + HOUR_MS);
}

interface InProcessProxy {
  readonly port: number;
  readonly proxy: TcpProxy;
  readonly tables: CounterTables;
  /** The cluster's shared queue cells and statistics. */
  readonly queue: ClusterState;
  /** The proxy's side of each accepted client, in accept order. */
  readonly accepted: net.Socket[];
  /** Publish the cluster changed (a new snapshot version). */
  readonly publish: (cluster: SnapshotCluster) => void;
}

/** A TcpProxy for one listener `web` on cluster `cluster`, accepting on 127.0.0.1. */
async function startProxy(cluster: SnapshotCluster): Promise<InProcessProxy> {
  const dims = { workers: 1, backendSlots: 8, listenerSlots: 2 };
  const tables = new CounterTables(createCounterBuffer(dims), dims);
  const counters = tables.forWorker(0);
  const snapshots = createSnapshotBuffer();
  const writer = new SnapshotWriter(snapshots);
  const publish = (changed: SnapshotCluster): void => void writer.publish({ clusters: [changed], listeners: [testListener()] });
  publish(cluster);
  const queue = new ClusterState(createClusterStateBuffer(cluster.stickyMaxEntries));
  const clusterStates = new Map([[cluster.name, queue]]);
  const router = new Router(new SnapshotReader(snapshots), { activeTotal: counters.activeTotal, random: seededRandom(1), clusterStates });
  const accessLog = new AccessLog({ enabled: false, sampling: 0, fd: 1 }, { worker: 0, counters, onError: () => undefined });
  const proxy = new TcpProxy({ counters, worker: 0, accessLog, clusterRoute: (name) => router.cluster(name) });
  const port = await freePort();
  const binding: ListenerBinding = { name: 'web', slot: 0, host: '127.0.0.1', port, protocol: 'tcp' };
  const accepted: net.Socket[] = [];
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
    accepted.push(socket);
    proxy.handle(socket, binding, router.routeFor('web'));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  cleanups.push(async () => {
    server.close();
    proxy.destroyAll('drain');
    await proxy.whenIdle();
  });
  return { port, proxy, tables, queue, accepted, publish };
}

async function echoClient(port: number): Promise<EchoConnection> {
  const connection = await openEcho(port);
  cleanups.push(() => Promise.resolve(connection.socket.destroy()));
  return connection;
}

describe('a wall-clock step', () => {
  it('does not close connections the idle sweep last saw active less than idle_timeout ago', async () => {
    const echo = await startBackend('echo');
    cleanups.push(async () => echo.close());
    // 60 s idle timeout: the sweep runs once a second, and nothing here is idle for real.
    const { port, tables, accepted } = await startProxy(testCluster({ idleTimeoutMs: 60_000, backends: [testBackend(echo.address)] }));
    const bytesFromClients = (): Promise<number> => Promise.resolve(tables.backendTotal(0, BackendCounter.bytesFromClient));
    const quiet = await echoClient(port);
    const busy = await echoClient(port);
    await quiet.exchange('q');
    await busy.exchange('b');
    // A sweep counted both: each was active as of that sweep, before the step.
    await eventually(bytesFromClients, (n) => n === 2);

    stepWallClockForward();
    await busy.exchange('b');
    // A sweep after the step counted the busy one's byte, and judged the quiet one too.
    expect(await eventually(bytesFromClients, (n) => n === 3)).toBe(3);

    expect(accepted[0]?.destroyed).toBe(false);
    expect(await quiet.exchange('still open')).toBe('still open');
  });

  it('does not expire sticky sessions: a client keeps its backend', async () => {
    const echoes = await Promise.all([startBackend('echo'), startBackend('echo'), startBackend('echo')]);
    for (const echo of echoes) cleanups.push(async () => echo.close());
    const backends = echoes.map((echo, slot) => testBackend(echo.address, { slot }));
    const { port } = await startProxy(testCluster({ stickyTtlMs: 60_000, stickyMaxEntries: 100, backends }));
    const servedBy = async (): Promise<number> => {
      const before = echoes.map((echo) => echo.accepted);
      const client = await echoClient(port);
      await client.exchange('x');
      client.socket.destroy();
      return echoes.findIndex((echo, i) => echo.accepted > (before[i] ?? 0));
    };
    const home = await servedBy();
    expect(home).toBeGreaterThanOrEqual(0);

    // An hour on the wall clock, not on the table's: the 60 s entry still holds.
    stepWallClockForward();
    const after = [await servedBy(), await servedBy(), await servedBy()];
    expect(after).toEqual([home, home, home]);
  });

  it('does not time out a queued connection that waits again after a failed attempt', async () => {
    const echo = await startBackend('echo');
    cleanups.push(async () => echo.close());
    const [refusing, alsoRefusing] = await freePorts(2);
    // Every backend takes one connection at most; the second refuses every connect, and so
    // does the third, added after the step. The waiter fails on the second and queues; the
    // queue's retry finds room on the third, fails there too, and queues the client again.
    const backends: SnapshotBackend[] = [
      testBackend(echo.address, { slot: 0, maxConnections: 1 }),
      testBackend(`127.0.0.1:${refusing!}`, { slot: 1, maxConnections: 1 }),
    ];
    const cluster = testCluster({ queueSize: 5, queueTimeoutMs: 60_000, idleTimeoutMs: 60_000, backends });
    const { port, tables, queue, accepted, publish } = await startProxy(cluster);
    const failures = (slot: number) => (): Promise<number> => Promise.resolve(tables.backendTotal(slot, BackendCounter.connectFailures));
    const holder = await echoClient(port);
    await holder.exchange('h');
    const waiter = await echoClient(port);
    await eventually(() => Promise.resolve(queue.statistics().queued_total), (n) => n === 1);

    stepWallClockForward();
    publish({ ...cluster, backends: [...backends, testBackend(`127.0.0.1:${alsoRefusing!}`, { slot: 2, maxConnections: 1 })] });
    // The retry's failed attempt: the waiter queued again after it, on the monotonic deadline.
    await eventually(failures(2), (n) => n === 1);
    expect(await failures(1)()).toBe(1);

    expect(queue.statistics().timed_out_total).toBe(0);
    expect(accepted[1]?.destroyed).toBe(false);
    holder.socket.destroy();
    expect(await waiter.exchange('served')).toBe('served');
    expect(queue.statistics().served_after_wait_total).toBe(1);
  });
});
