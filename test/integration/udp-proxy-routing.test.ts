/**
 * The UDP proxy's routing rules, driven in-process: a real UdpProxy with real sockets on
 * 127.0.0.1, fed snapshots by hand (the control plane's admin and health changes arrive
 * the same way, as new snapshot versions).
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/dataplane/balancer/random.ts';
import { buildRoutingTable, type RoutingEnv, type RoutingTable } from '../../src/dataplane/routing-table.ts';
import { UdpProxy } from '../../src/dataplane/udp-proxy.ts';
import { BackendCounter, CounterTables, createCounterBuffer, ListenerCounter } from '../../src/shared/counters.ts';
import type { UdpListenerSettings } from '../../src/shared/messages.ts';
import { ClusterState, createClusterStateBuffer } from '../../src/shared/cluster-state.ts';
import type { BackendState, SnapshotBackend, SnapshotCluster } from '../../src/shared/snapshot/types.ts';
import { testBackend, testCluster, testListener, testSnapshot } from '../helpers/snapshot.ts';
import { eventually } from '../helpers/client.ts';
import { freeUdpPort, startUdpBackend, udpClient, type UdpClient, type UdpTestBackend } from '../helpers/udp.ts';

const cleanups: (() => Promise<unknown> | undefined)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const DIMS = { workers: 1, backendSlots: 8, listenerSlots: 2 };
const SETTINGS: UdpListenerSettings = {
  sessionTimeoutMs: 60_000,
  maxSessions: 100,
  maxReplies: 0,
  recvBufferBytes: 1 << 20,
  sendBufferBytes: 1 << 20,
};

interface Harness {
  readonly port: number;
  readonly proxy: UdpProxy;
  readonly counters: CounterTables;
  /** Publish a new snapshot version in which the backends have these states/weights. */
  publish(backends: readonly SnapshotBackend[]): void;
}

function backendAt(slot: number, port: number, state: BackendState = 'healthy', weight = 1, drained = state === 'unhealthy', maxConnections = 0): SnapshotBackend {
  return testBackend(`127.0.0.1:${port}`, { cluster: 'dns', slot, state, weight, configuredWeight: weight, drained, maxConnections });
}

interface HarnessOptions {
  readonly settings?: UdpListenerSettings;
  readonly host?: string;
  /** Cluster keys beyond the defaults (algorithm, stickyTtlMs, …). */
  readonly cluster?: Partial<SnapshotCluster>;
}

async function harness(initial: readonly SnapshotBackend[], options: HarnessOptions = {}): Promise<Harness> {
  const { settings = SETTINGS, host = '127.0.0.1' } = options;
  const counters = new CounterTables(createCounterBuffer(DIMS), DIMS);
  // A cluster state buffer, so `sticky` has its shared affinity table.
  const clusterStates = new Map([['dns', new ClusterState(createClusterStateBuffer(64))]]);
  const env: RoutingEnv = { activeTotal: counters.activeTotal, random: seededRandom(1), clusterStates };
  let version = 0;
  let table: RoutingTable | undefined;
  const publish = (backends: readonly SnapshotBackend[]): void => {
    version++;
    const snapshot = testSnapshot({
      version,
      clusters: [testCluster({ name: 'dns', backends, ...options.cluster })],
      listeners: [testListener({ name: 'dns', cluster: 'dns' })],
    });
    table = buildRoutingTable(snapshot, env, table);
  };
  publish(initial);
  // Port 0: the kernel picks; the proxy reports what it bound.
  const proxy = new UdpProxy({ name: 'dns', slot: 0, host, port: 0, protocol: 'udp', udp: settings }, settings, {
    routeFor: (listener) => table?.byListener.get(listener),
    clusterRoute: (name) => table?.byCluster.get(name),
    counters: counters.forWorker(0),
    workers: 1,
    now: () => performance.now(),
    warn: () => undefined,
    reportsSharedFindings: false,
  });
  expect(await proxy.bind()).toBeUndefined();
  cleanups.push(() => {
    proxy.close();
    return undefined;
  });
  return { port: proxy.boundPort(), proxy, counters, publish };
}

async function backends(n: number): Promise<UdpTestBackend[]> {
  const started = await Promise.all(Array.from({ length: n }, async () => startUdpBackend('tagged')));
  for (const b of started) cleanups.push(async () => b.close());
  return started;
}

async function client(): Promise<UdpClient> {
  const c = await udpClient();
  cleanups.push(() => {
    c.close();
    return undefined;
  });
  return c;
}

/** Send `payload` and resolve with the address of the backend that answered. */
/**
 * Send one datagram that should get no reply, and wait for `decided` (a counter the proxy
 * moves when it drops or fails it): an event, where waiting for no reply would need a
 * window of time. Resolves with any replies that came meanwhile (none, if all went well).
 */
async function unanswered(c: UdpClient, port: number, payload: string, decided: () => boolean): Promise<string[]> {
  const replies: string[] = [];
  const onMessage = (m: Buffer): void => {
    replies.push(m.toString());
  };
  c.socket.on('message', onMessage);
  c.socket.send(payload, port, '127.0.0.1');
  await eventually(async () => Promise.resolve(decided()), (done) => done, 20_000, 10);
  c.socket.off('message', onMessage);
  return replies;
}

async function ask(c: UdpClient, port: number, payload: string, tries = 3): Promise<string> {
  const reply = await c.request(port, Buffer.from(payload), { accept: (r) => r.toString().endsWith(`|${payload}`), retryMs: 500, tries });
  return reply.toString().split('|')[0] ?? '';
}

describe('UDP session routing across snapshot versions', () => {
  it.each<{ change: string; state: BackendState; weight: number; drained: boolean; outcome: 'stays' | 'moves' }>([
    { change: 'healthy in the next version', state: 'healthy', weight: 1, drained: false, outcome: 'stays' },
    { change: 'draining', state: 'draining', weight: 1, drained: false, outcome: 'stays' },
    { change: 'given weight 0', state: 'healthy', weight: 0, drained: false, outcome: 'stays' },
    { change: 'drained (its drain ended)', state: 'draining', weight: 1, drained: true, outcome: 'moves' },
    { change: 'unhealthy', state: 'unhealthy', weight: 1, drained: true, outcome: 'moves' },
  ])('a session whose backend is $change $outcome', async ({ state, weight, drained, outcome }) => {
    const [a, b] = await backends(2);
    const h = await harness([backendAt(0, a!.port), backendAt(1, b!.port)]);
    const c = await client();
    expect(await ask(c, h.port, 'one')).toBe(a!.address);
    h.publish([backendAt(0, a!.port, state, weight, drained), backendAt(1, b!.port)]);
    const next = await ask(c, h.port, 'two');
    expect(next).toBe(outcome === 'stays' ? a!.address : b!.address);
    expect(h.counters.listenerTotal(0, ListenerCounter.accepted)).toBe(outcome === 'stays' ? 1 : 2);
    expect(h.proxy.sessions).toBe(1);
  });

  it('re-picks a session whose backend was removed from the cluster', async () => {
    const [a, b] = await backends(2);
    const h = await harness([backendAt(0, a!.port), backendAt(1, b!.port)]);
    const c = await client();
    expect(await ask(c, h.port, 'one')).toBe(a!.address);
    h.publish([backendAt(1, b!.port)]);
    expect(await ask(c, h.port, 'two')).toBe(b!.address);
    // The old session's gauge went back down with it.
    expect(h.counters.udpSessions(0)).toBe(0);
    expect(h.counters.udpSessions(1)).toBe(1);
  });

  it('sends the very next datagram after an ICMP refusal to another backend', async () => {
    const [b] = await backends(1);
    const gone = await freeUdpPort();
    const h = await harness([backendAt(0, gone), backendAt(1, b!.port)]);
    const [c, other] = [await client(), await client()];
    // Round robin sends the first client to slot 0, where nothing listens: no reply, and the
    // refusal is counted.
    expect(await unanswered(c, h.port, 'lost', () => h.counters.backendTotal(0, BackendCounter.connectFailures) >= 1)).toEqual([]);
    // Another client takes slot 1, so round robin alone would pick slot 0 again next.
    expect(await ask(other, h.port, 'other')).toBe(b!.address);
    // One try: the session moves at this datagram, and not back to the backend that refused.
    expect(await ask(c, h.port, 'next', 1)).toBe(b!.address);
  });

  it('holds the first datagrams while a backend host name resolves, then sends them in order', async () => {
    const [a] = await backends(1);
    const h = await harness([{ ...backendAt(0, a!.port), host: 'localhost' }]);
    const c = await client();
    const replies: string[] = [];
    c.socket.on('message', (m: Buffer) => replies.push(m.toString().split('|')[1] ?? ''));
    for (const payload of ['one', 'two', 'three']) c.socket.send(payload, h.port, '127.0.0.1');
    await eventually(async () => Promise.resolve(replies.length), (n) => n >= 3, 20_000, 10);
    expect(replies).toEqual(['one', 'two', 'three']);
    expect(h.proxy.sessions).toBe(1);
  });

  it('serves IPv6 clients through an IPv6 listener to an IPv6 backend', async () => {
    const echo = dgram.createSocket('udp6');
    echo.on('message', (m, r) => echo.send(m, r.port, r.address));
    await new Promise<void>((resolve) => echo.bind(0, '::1', resolve));
    cleanups.push(() => {
      echo.close();
      return undefined;
    });
    const backend = { ...backendAt(0, echo.address().port), host: '::1', address: `[::1]:${echo.address().port}` };
    const h = await harness([backend], { host: '::1' });
    const c = dgram.createSocket('udp6');
    cleanups.push(() => {
      c.close();
      return undefined;
    });
    const reply = new Promise<string>((resolve) => c.once('message', (m: Buffer) => resolve(m.toString())));
    c.send('over v6', h.port, '::1');
    expect(await reply).toBe('over v6');
  });

  it('holds a place under max_connections for each session, passes over a full backend, and drops at the limit', async () => {
    const [a, b] = await backends(2);
    // consistent_hash on source_ip: every client of 127.0.0.1 prefers the same backend.
    const h = await harness([backendAt(0, a!.port, 'healthy', 1, false, 1), backendAt(1, b!.port, 'healthy', 1, false, 1)], {
      // Long enough that the first two sessions outlive the third client's datagram on a
      // loaded machine (they hold the places it is refused for), short enough to wait out.
      settings: { ...SETTINGS, sessionTimeoutMs: 2_000 },
      cluster: { algorithm: 'consistent_hash', hashKey: 'source_ip' },
    });
    const [c1, c2, c3] = [await client(), await client(), await client()];
    const preferred = await ask(c1, h.port, 'one');
    const other = preferred === a!.address ? b!.address : a!.address;
    // The preferred backend is at its limit of 1: the next client goes to the other one.
    expect(await ask(c2, h.port, 'two')).toBe(other);
    expect(h.counters.activeConnections(0) + h.counters.activeConnections(1)).toBe(2);
    // Both are full: the datagram is dropped and counted, not queued.
    expect(await unanswered(c3, h.port, 'three', () => h.counters.listenerTotal(0, ListenerCounter.refusedAtLimit) >= 1)).toEqual([]);
    expect(h.counters.listenerTotal(0, ListenerCounter.refusedAtLimit)).toBe(1);
    expect(h.proxy.sessions).toBe(2);
    // Once the first two sessions went idle their places are free again.
    await eventually(async () => Promise.resolve(h.proxy.sessions), (n) => n === 0, 20_000, 10);
    expect(h.counters.activeConnections(0) + h.counters.activeConnections(1)).toBe(0);
    expect(await ask(c3, h.port, 'again')).toBe(preferred);
  });

  it('sends every client of one address to one backend with consistent_hash on source_ip', async () => {
    const four = await backends(4);
    const h = await harness(
      four.map((b, i) => backendAt(i, b.port)),
      { cluster: { algorithm: 'consistent_hash', hashKey: 'source_ip' } },
    );
    const served = new Set<string>();
    for (let i = 0; i < 8; i++) served.add(await ask(await client(), h.port, `c${i}`));
    expect(served.size).toBe(1);
  });

  it('spreads the clients of one address with consistent_hash on source_ip_port', async () => {
    const four = await backends(4);
    const h = await harness(
      four.map((b, i) => backendAt(i, b.port)),
      { cluster: { algorithm: 'consistent_hash', hashKey: 'source_ip_port' } },
    );
    const served = new Set<string>();
    for (let i = 0; i < 16; i++) served.add(await ask(await client(), h.port, `c${i}`));
    expect(served.size).toBeGreaterThan(1);
  });

  it('gives a sticky client its remembered backend in its next session', async () => {
    const [a, b] = await backends(2);
    const h = await harness([backendAt(0, a!.port), backendAt(1, b!.port)], {
      settings: { ...SETTINGS, maxReplies: 1 },
      cluster: { stickyTtlMs: 60_000, stickyMaxEntries: 64 },
    });
    // Every session ends at its reply; round robin alone would alternate a, b, a, b.
    const served: string[] = [];
    for (let i = 0; i < 4; i++) served.push(await ask(await client(), h.port, `s${i}`));
    expect(served).toEqual([a!.address, a!.address, a!.address, a!.address]);
    expect(h.counters.listenerTotal(0, ListenerCounter.accepted)).toBe(4);
  });

  it('drops a datagram that finds no eligible backend, and counts it', async () => {
    const [a] = await backends(1);
    const h = await harness([backendAt(0, a!.port, 'unhealthy')]);
    const c = await client();
    expect(await unanswered(c, h.port, 'x', () => h.counters.listenerTotal(0, ListenerCounter.refusedNoBackend) >= 1)).toEqual([]);
    expect(h.counters.listenerTotal(0, ListenerCounter.refusedNoBackend)).toBe(1);
    expect(h.proxy.sessions).toBe(0);
  });

  it('evicts down to a lowered max_sessions at once, least recently active first', async () => {
    const [a] = await backends(1);
    const h = await harness([backendAt(0, a!.port)]);
    const five = await Promise.all(Array.from({ length: 5 }, client));
    for (const [i, c] of five.entries()) await ask(c, h.port, `hello-${i}`);
    // Client 0 becomes the most recently active.
    await ask(five[0]!, h.port, 'again');
    h.proxy.update({ ...SETTINGS, maxSessions: 2 });
    expect(h.proxy.sessions).toBe(2);
    expect(h.counters.listenerTotal(0, ListenerCounter.udpSessionsEvicted)).toBe(3);
    // Client 0 and client 4 kept their sessions: they get answers without a new session.
    await ask(five[0]!, h.port, 'still');
    await ask(five[4]!, h.port, 'still');
    expect(h.counters.listenerTotal(0, ListenerCounter.accepted)).toBe(5);
  });
});
