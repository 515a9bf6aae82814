/**
 * Control-plane worker thread: the single writer of backend state and of the snapshot.
 * It builds the registry from config (recovering from the last published snapshot when
 * it is restarted, so routing does not change under the data plane) and publishes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CounterTables } from '../shared/counters.ts';
import { createLogger, flushLogs } from '../shared/logger.ts';
import type { ControlPlaneCommand, ControlPlaneEvent, ControlPlaneWorkerData } from '../shared/messages.ts';
import { unknownMessage } from '../shared/messages.ts';
import { SnapshotReader } from '../shared/snapshot/reader.ts';
import { BackendRegistry } from './backend-registry.ts';
import { SlotAllocator } from './slot-allocator.ts';
import { SnapshotWriter } from './snapshot-writer.ts';

const data = workerData as ControlPlaneWorkerData;
const port = parentPort;
if (port === null) throw new Error('the control plane must run in a worker thread');

const log = createLogger(data.logLevel, { component: 'controlplane' });

function send(event: ControlPlaneEvent): void {
  port?.postMessage(event);
}

const existing = new SnapshotReader(data.snapshotBuffer).current();
const slots = new SlotAllocator(data.counterDims.backendSlots);
const registry = new BackendRegistry(data.config, slots, existing.version > 0 ? existing : undefined);
const writer = new SnapshotWriter(data.snapshotBuffer);
const counters = new CounterTables(data.counterBuffer, data.counterDims).forControlPlane();

function publish(): number {
  const version = writer.publish(registry.snapshotContent());
  counters.snapshotPublished();
  slots.published();
  log.debug({ version }, 'snapshot published');
  return version;
}

const version = publish();
if (existing.version > 0) log.info({ recoveredFrom: existing.version, version }, 'control plane recovered state from the last snapshot');
send({ type: 'ready', version, backends: registry.size });

function onCommand(command: ControlPlaneCommand): void {
  // More command types arrive with the admin API; unknown ones fail loudly.
  if ((command.type as string) !== 'shutdown') throw unknownMessage('controlplane', command);
  flushLogs();
  port?.close();
}

port.on('message', onCommand);
