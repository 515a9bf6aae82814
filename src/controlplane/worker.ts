/**
 * Control-plane worker thread: the single writer of backend state and of the snapshot.
 * It builds the registry from config (recovering from the last published snapshot when
 * it is restarted, so routing does not change under the data plane) and publishes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../shared/config/schema.ts';
import { CounterTables } from '../shared/counters.ts';
import { createLogger, flushLogs } from '../shared/logger.ts';
import type { ControlPlaneCommand, ControlPlaneEvent, ControlPlaneWorkerData } from '../shared/messages.ts';
import { unknownMessage } from '../shared/messages.ts';
import { SnapshotReader } from '../shared/snapshot/reader.ts';
import { BackendRegistry } from './backend-registry.ts';
import { RetiredSlots } from './retired-slots.ts';
import { SlotAllocator } from './slot-allocator.ts';
import { SnapshotWriter } from './snapshot-writer.ts';

/** How often slots of removed backends are checked for their last connection. */
const SWEEP_INTERVAL_MS = 500;

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
const retired = new RetiredSlots(new CounterTables(data.counterBuffer, data.counterDims), slots);
const writer = new SnapshotWriter(data.snapshotBuffer);
let config: Config = data.config;

function publish(): number {
  const version = writer.publish(registry.snapshotContent());
  slots.published();
  log.debug({ version }, 'snapshot published');
  return version;
}

const version = publish();
if (existing.version > 0) log.info({ recoveredFrom: existing.version, version }, 'control plane recovered state from the last snapshot');
send({ type: 'ready', version, backends: registry.size });

const sweep = setInterval(() => {
  retired.sweep();
}, SWEEP_INTERVAL_MS);

function applyConfig(requestId: number, next: Config): void {
  const removed = registry.applyConfig(next, config);
  config = next;
  retired.add(removed);
  const applied = publish();
  log.info({ version: applied, removedBackends: removed.map((b) => b.id) }, 'config applied');
  send({ type: 'config.applied', requestId, version: applied });
}

function onCommand(command: ControlPlaneCommand): void {
  switch (command.type) {
    case 'config.apply':
      applyConfig(command.requestId, command.config);
      return;
    case 'fault.crash':
      setImmediate(() => {
        throw new Error('fault injection: control-plane worker crash requested');
      });
      return;
    case 'shutdown':
      clearInterval(sweep);
      flushLogs();
      port?.close();
      return;
    default:
      throw unknownMessage('controlplane', command satisfies never);
  }
}

port.on('message', onCommand);
