/**
 * Control-plane worker thread: the single writer of backend state and of the snapshot.
 * It builds the registry from config (recovering from the last published snapshot when
 * it is restarted, so routing does not change under the data plane), runs health checks,
 * applies reloads and publishes. This file is only the message glue; the logic is in
 * control-plane.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CounterTables } from '../shared/counters.ts';
import { createLogger, flushLogs } from '../shared/logger.ts';
import type { ControlPlaneCommand, ControlPlaneEvent, ControlPlaneWorkerData } from '../shared/messages.ts';
import { unknownMessage } from '../shared/messages.ts';
import { SnapshotReader } from '../shared/snapshot/reader.ts';
import { ControlPlane } from './control-plane.ts';
import { SlotAllocator } from './slot-allocator.ts';
import { SnapshotWriter } from './snapshot-writer.ts';

const data = workerData as ControlPlaneWorkerData;
const port = parentPort;
if (port === null) throw new Error('the control plane must run in a worker thread');

const log = createLogger(data.logLevel);

function send(event: ControlPlaneEvent): void {
  port?.postMessage(event);
}

const existing = new SnapshotReader(data.snapshotBuffer).current();
const controlPlane = new ControlPlane({
  config: data.config,
  counters: new CounterTables(data.counterBuffer, data.counterDims),
  writer: new SnapshotWriter(data.snapshotBuffer),
  slots: new SlotAllocator(data.counterDims.backendSlots),
  log,
  recovered: existing.version > 0 ? existing : undefined,
  onTransitions: (reports) => send({ type: 'transitions', reports }),
  onDiscoveryStatus: (status) => send({ type: 'discovery.status', status }),
  onRegistryStatus: (status) => send({ type: 'registry.status', status }),
  serially: (step) => serially(step),
});

/** Commands that change state run one at a time, in arrival order (some wait for a first probe). */
let queue: Promise<unknown> = Promise.resolve();
function serially(run: () => Promise<void>): void {
  queue = queue.then(run).catch((error: unknown) => {
    // A failure here is a bug; the worker restarts and recovers from the last snapshot.
    setImmediate(() => {
      throw error;
    });
  });
}

function onCommand(command: ControlPlaneCommand): void {
  switch (command.type) {
    case 'config.apply':
      serially(async () => {
        const result = await controlPlane.applyConfig(command.config, { dryRun: command.dryRun });
        if (result.ok && !result.dryRun) log.info({ component: 'controlplane', version: result.version }, 'config applied');
        send({ type: 'config.applied', requestId: command.requestId, result });
      });
      return;
    case 'backend.command':
      // The queue moves on once the change is written; with a registry the answer waits for
      // this instance's watch to apply it, a step that needs the queue.
      serially(async () => {
        const { answer } = await controlPlane.submit(command.command);
        void answer.then((result) => send({ type: 'backend.result', requestId: command.requestId, result }));
      });
      return;
    case 'listener.acl':
      serially(async () => {
        const { answer } = await controlPlane.submitAcl(command.listener, command.acl);
        void answer.then((result) => send({ type: 'listener.acl.result', requestId: command.requestId, result }));
      });
      return;
    case 'routes.command':
      serially(async () => {
        const { answer } = await controlPlane.submitRoutes(command.command);
        void answer.then((result) => send({ type: 'routes.result', requestId: command.requestId, result }));
      });
      return;
    case 'stats.query':
      send({ type: 'stats', requestId: command.requestId, stats: controlPlane.stats() });
      return;
    case 'fault.crash':
      setImmediate(() => {
        throw new Error('fault injection: control-plane worker crash requested');
      });
      return;
    case 'shutdown':
      // With a registry, closing leaves the fleet (revokes the instance's lease) first.
      void controlPlane.close().finally(() => {
        flushLogs();
        port?.close();
      });
      return;
    default:
      throw unknownMessage('controlplane', command satisfies never);
  }
}

port.on('message', onCommand);
serially(async () => {
  const version = await controlPlane.start();
  send({ type: 'ready', version, backends: controlPlane.registry.size });
});
