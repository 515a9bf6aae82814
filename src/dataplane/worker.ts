/**
 * Data-plane worker thread: accepts on every listener, routes each connection by the
 * current snapshot, proxies bytes, and counts into its own row of the shared counters.
 * It never waits for the control plane and sends no message per connection.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type net from 'node:net';
import { CounterTables } from '../shared/counters.ts';
import { createLogger, flushLogs } from '../shared/logger.ts';
import type { DataPlaneCommand, DataPlaneEvent, DataPlaneWorkerData, ListenerBinding } from '../shared/messages.ts';
import { unknownMessage } from '../shared/messages.ts';
import { SnapshotReader } from '../shared/snapshot/reader.ts';
import { ListenerSet } from './listeners.ts';
import { Router } from './router.ts';
import { TcpProxy } from './tcp-proxy.ts';
import { countResources } from '../shared/resources.ts';

const DRAIN_PROGRESS_INTERVAL_MS = 1000;

const data = workerData as DataPlaneWorkerData;
const port = parentPort;
if (port === null) throw new Error('the data plane must run in a worker thread');

const log = createLogger(data.logLevel, { component: 'dataplane', worker: data.worker });
const router = new Router(new SnapshotReader(data.snapshotBuffer));
const proxy = new TcpProxy(new CounterTables(data.counterBuffer, data.counterDims).forWorker(data.worker));
const listeners = new ListenerSet(
  (socket: net.Socket, binding: ListenerBinding) => {
    proxy.handle(socket, binding.slot, router.routeFor(binding.name));
  },
  (binding, error) => {
    log.error({ listener: binding.name, err: error }, 'listener error');
  },
);
let draining = false;

function send(event: DataPlaneEvent): void {
  port?.postMessage(event);
}

async function setListeners(bindings: readonly ListenerBinding[]): Promise<void> {
  if (draining) return;
  const failures = await listeners.apply(bindings);
  for (const failure of failures) send({ type: 'listen.failed', ...failure });
  send({ type: 'listeners.ready', listening: listeners.names() });
}

async function drain(timeoutMs: number): Promise<void> {
  draining = true;
  listeners.closeAll();
  const progress = setInterval(() => {
    send({ type: 'drain.progress', connections: proxy.connections });
  }, DRAIN_PROGRESS_INTERVAL_MS);
  let deadline: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    deadline = setTimeout(resolve, timeoutMs, 'timeout');
  });
  const outcome = await Promise.race([proxy.whenIdle().then(() => 'idle' as const), timedOut]);
  clearInterval(progress);
  clearTimeout(deadline);
  const cut = outcome === 'timeout' ? proxy.destroyAll('drain') : 0;
  if (cut > 0) log.warn({ cut }, 'drain timeout: cut the remaining connections');
  await proxy.whenIdle();
  flushLogs();
  send({ type: 'drained', cut });
}

function onCommand(command: DataPlaneCommand): void {
  switch (command.type) {
    case 'listeners.set':
      void setListeners(command.listeners);
      return;
    case 'drain':
      void drain(command.timeoutMs);
      return;
    case 'fault.crash':
      setImmediate(() => {
        throw new Error(`fault injection: data-plane worker ${data.worker} crash requested`);
      });
      return;
    case 'resources.query':
      send({
        type: 'resources',
        requestId: command.requestId,
        report: { worker: data.worker, connections: proxy.connections, resources: countResources() },
      });
      return;
    default:
      throw unknownMessage('dataplane', command);
  }
}

port.on('message', onCommand);
