/**
 * Data-plane worker thread: accepts on every listener, routes each connection by the
 * current snapshot, proxies bytes, and counts into its own row of the shared counters.
 * It never waits for the control plane and sends no message per connection.
 */
import { randomInt } from 'node:crypto';
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import type net from 'node:net';
import { CounterTables } from '../shared/counters.ts';
import { IpLimitTable } from '../shared/ip-limits.ts';
import { createLogger, flushLogs } from '../shared/logger.ts';
import { ClusterState } from '../shared/cluster-state.ts';
import type {
  ClusterStateBinding,
  DataPlaneCommand,
  DataPlaneEvent,
  DataPlaneWorkerData,
  ListenerBinding,
} from '../shared/messages.ts';
import { unknownMessage } from '../shared/messages.ts';
import { recordPropagation, wallClockMicros } from '../shared/snapshot/propagation.ts';
import { SnapshotReader } from '../shared/snapshot/reader.ts';
import { AccessLog } from './access-log.ts';
import { seededRandom } from './balancer/random.ts';
import { ListenerSet } from './listeners.ts';
import { Router } from './router.ts';
import { closesConnections, type ClusterRoute } from './routing-table.ts';
import { TcpProxy } from './tcp-proxy.ts';
import { chooseDataPath } from './data-path.ts';
import { bindingProblem } from './stream-handle.ts';
import type { Endpoint, ProxyHeader } from './proxy-protocol.ts';
import { UdpListenerSet } from './udp-listeners.ts';
import { countResources } from '../shared/resources.ts';

const DRAIN_PROGRESS_INTERVAL_MS = 1000;
/** A takeover whose seed never comes (the supervisor failed) must not hold datagrams for ever. */
const HANDOVER_HOLD_MAX_MS = 15_000;

const data = workerData as DataPlaneWorkerData;
const port = parentPort;
if (port === null) throw new Error('the data plane must run in a worker thread');

const log = createLogger(data.logLevel, { component: 'dataplane', worker: data.worker });
const counters = new CounterTables(data.counterBuffer, data.counterDims).forWorker(data.worker);
const clusterStates = new Map<string, ClusterState>();
setClusterStates(data.clusterStates);
const reader = new SnapshotReader(data.snapshotBuffer, {
  onTakenIn: (version) => {
    recordPropagation(counters.publishStamp, version, wallClockMicros(), (ms) => {
      counters.observeSnapshotPropagation(ms);
    });
  },
});
const router = new Router(reader, {
  activeTotal: counters.activeTotal,
  // mulberry32 costs ~4 ns a draw against ~11 ns for Math.random (measured); seeded per worker.
  random: seededRandom(randomInt(2 ** 32)),
  clusterStates,
});
let accessLogErrorLogged = false;
const accessLog = new AccessLog(data.accessLog, {
  worker: data.worker,
  counters,
  onError: (error) => {
    // Once per worker: a full disk would otherwise repeat this for every line.
    if (accessLogErrorLogged) return;
    accessLogErrorLogged = true;
    log.error({ err: error }, 'access log: write failed; lines may be lost');
  },
});
/** Listener slot → the snapshot version whose refusals were already logged (one line per version). */
const refusalLogged = new Map<number, number>();
const dataPath = chooseDataPath(process.env.SLUICE_DATA_PATH, bindingProblem);
if (dataPath.warning !== undefined) log.warn({ dataPath: dataPath.path }, dataPath.warning);
else log.debug({ dataPath: dataPath.path }, 'tcp data path');
const proxy = new TcpProxy({
  dataPath: dataPath.path,
  counters,
  worker: data.worker,
  accessLog,
  clusterRoute: (name) => router.cluster(name),
  onRefused: (slot, route) => {
    logRefusal(slot, route);
  },
  edge: {
    limits: new IpLimitTable(data.ipLimitBuffer, data.worker),
    // Only at debug level: the line's objects would be built per connection otherwise.
    ...(log.isLevelEnabled('debug')
      ? {
          onProxyHeader: (listener: ListenerBinding, header: ProxyHeader, peer: Endpoint) => {
            log.debug({ listener: listener.name, client: header.source, destination: header.destination, command: header.command, peer }, 'proxy header');
          },
        }
      : {}),
  },
});
const udpListeners = new UdpListenerSet({
  routeFor: (listener) => router.routeFor(listener),
  clusterRoute: (name) => router.cluster(name),
  counters,
  workers: data.counterDims.workers,
  now: () => performance.now(),
  warn: (message, details) => {
    log.warn(details, message);
  },
  reportsSharedFindings: data.worker === 0,
  accessLog,
  onRefused: (slot, route) => {
    logRefusal(slot, route);
  },
}, { holdForHandover: data.holdUdpForHandover === true });
const holdTimer = udpListeners.holdingForHandover
  ? setTimeout(() => {
      log.warn({ heldForMs: HANDOVER_HOLD_MAX_MS }, 'handover: no UDP sessions came from the old process; serving UDP without them');
      udpListeners.seed([]);
    }, HANDOVER_HOLD_MAX_MS).unref()
  : undefined;
const listeners = new ListenerSet(
  (socket: net.Socket, binding: ListenerBinding) => {
    const table = router.current();
    proxy.handle(socket, binding, table.byListener.get(binding.name), table.edgeByListener.get(binding.name));
  },
  (binding, error) => {
    log.error({ listener: binding.name, err: error }, 'listener error');
  },
  dataPath.path === 'handles'
    ? (stream, binding) => {
        // A listener with edge settings reads its prelude through a net.Socket (edge-gate.ts).
        const table = router.current();
        if (table.edgeByListener.has(binding.name)) return false;
        proxy.handleStream(stream, binding, table.byListener.get(binding.name));
        return true;
      }
    : undefined,
);
let draining = false;

/** Routing tables built from the next snapshot version on use these; unchanged buffers keep their view. */
function setClusterStates(states: readonly ClusterStateBinding[]): void {
  const previous = new Map(clusterStates);
  clusterStates.clear();
  for (const { cluster, buffer } of states) {
    const kept = previous.get(cluster);
    clusterStates.set(cluster, kept?.cells.buffer === buffer ? kept : new ClusterState(buffer));
  }
}

function logRefusal(listenerSlot: number, route: ClusterRoute | undefined): void {
  const version = router.version;
  if (refusalLogged.get(listenerSlot) === version) return;
  refusalLogged.set(listenerSlot, version);
  log.warn(
    { listenerSlot, cluster: route?.name, snapshotVersion: version },
    route === undefined ? 'refused a client: its listener routes to no cluster' : 'refused a client: no healthy backend (panic_mode refuse)',
  );
}

/**
 * Follows snapshot publishes off the accept path: takes each new version in at once and
 * closes connections to backends that were removed or whose drain ended (the drain timeout
 * and `DELETE ?force=true` rely on this). Waits with Atomics.waitAsync: no timer, no message.
 */
async function followSnapshots(): Promise<void> {
  let swept = router.current();
  for (;;) {
    // Read before taking the table in, so a publish in between wakes the wait at once.
    const seen = reader.version();
    const table = router.current();
    if (table !== swept && closesConnections(swept, table)) {
      // A UDP session counts as a connection here, as it does in active_connections.
      const udpSessions = udpListeners.endUnkept(table.keep);
      const closed = proxy.closeUnkept(table.keep, table.snapshot.version) + udpSessions;
      if (closed > 0) log.info({ closed, udpSessions, snapshotVersion: table.snapshot.version }, 'closed connections to drained or removed backends');
    }
    swept = table;
    await reader.changedFrom(seen);
  }
}
void followSnapshots();

function send(event: DataPlaneEvent): void {
  port?.postMessage(event);
}

async function setListeners(bindings: readonly ListenerBinding[]): Promise<void> {
  if (draining) return;
  const [tcpFailures, udpFailures] = await Promise.all([
    listeners.apply(bindings.filter((b) => b.protocol === 'tcp')),
    udpListeners.apply(bindings),
  ]);
  for (const failure of [...tcpFailures, ...udpFailures]) send({ type: 'listen.failed', ...failure });
  send({ type: 'listeners.ready', listening: [...listeners.names(), ...udpListeners.names()] });
}

/** TCP connections and UDP sessions still open in this worker. */
function openFlows(): number {
  return proxy.connections + udpListeners.sessions;
}

async function drain(timeoutMs: number): Promise<void> {
  draining = true;
  listeners.closeAll();
  // A UDP listener stays bound while draining: its sessions' replies leave from its address.
  udpListeners.stopNewSessions();
  const progress = setInterval(() => {
    send({ type: 'drain.progress', connections: openFlows() });
  }, DRAIN_PROGRESS_INTERVAL_MS);
  let deadline: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    deadline = setTimeout(resolve, timeoutMs, 'timeout');
  });
  const idle = Promise.all([proxy.whenIdle(), udpListeners.whenIdle()]).then(() => 'idle' as const);
  const outcome = await Promise.race([idle, timedOut]);
  clearInterval(progress);
  clearTimeout(deadline);
  const cut = outcome === 'timeout' ? proxy.destroyAll('drain') + udpListeners.endAll('drain') : 0;
  if (cut > 0) log.warn({ cut }, 'drain timeout: cut the remaining connections and UDP sessions');
  udpListeners.closeAll();
  await proxy.whenIdle();
  flushLogs();
  send({ type: 'drained', cut });
}

function onCommand(command: DataPlaneCommand): void {
  switch (command.type) {
    case 'listeners.set':
      void setListeners(command.listeners);
      return;
    case 'cluster-states.set':
      setClusterStates(command.states);
      router.invalidate();
      return;
    case 'drain':
      void drain(command.timeoutMs);
      return;
    case 'fault.crash':
      setImmediate(() => {
        throw new Error(`fault injection: data-plane worker ${data.worker} crash requested`);
      });
      return;
    case 'access-log.reopen': {
      const { fd } = command;
      void accessLog.reopen(fd).then(() => {
        send({ type: 'access-log.reopened', fd });
      });
      return;
    }
    case 'udp.handover.export':
      send({ type: 'udp.handover.sessions', requestId: command.requestId, tables: udpListeners.handOver(command.stop) });
      return;
    case 'udp.handover.share':
      udpListeners.share(command.tables);
      return;
    case 'udp.handover.close':
      // The successor has the sessions: its sockets get all of the port's traffic from now on.
      udpListeners.closeAll();
      return;
    case 'udp.handover.seed':
      clearTimeout(holdTimer);
      udpListeners.seed(command.tables);
      return;
    case 'resources.query':
      // Only under --expose-gc (the soak, bench/soak.ts): the heap after a full collection,
      // so that successive reports compare live data, not points in the GC cycle.
      (globalThis as { gc?: () => void }).gc?.();
      send({
        type: 'resources',
        requestId: command.requestId,
        report: {
          worker: data.worker,
          connections: proxy.connections,
          udpSessions: udpListeners.sessions,
          heapUsedBytes: getHeapStatistics().used_heap_size,
          resources: countResources(),
        },
      });
      return;
    default:
      throw unknownMessage('dataplane', command satisfies never);
  }
}

port.on('message', onCommand);
