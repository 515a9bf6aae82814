/**
 * The fixed capacity limits of a running Sluice, and the one check of a change against them.
 * `sluice validate`, `sluice run`, a reload (and its dry run) and the admin API's writes all
 * ask here, so a file `validate` accepts is one `run` starts, and a change that does not fit
 * is refused whole before anything is recorded (state file) or published (snapshot).
 *
 * The bounds are fixed at start-up because the shared buffers are (DESIGN.md allows handing
 * a larger snapshot buffer over; not done: `capacity.backends` sizes both buffers at start
 * instead, and docs/reload.md states the bounds):
 * - backend slots: rows of the shared counter table (`capacity.backends`). A removed backend
 *   keeps its row until its connections closed, so a reload swapping N backends for N others
 *   needs 2N while the old ones drain.
 * - snapshot bytes: one slot of the snapshot buffer holds the encoded snapshot; listeners'
 *   acls and backends take most of it (260-350 bytes a backend, ~20-45 a CIDR block). Sized
 *   from the backend slots (layout.ts slotCapacityFor).
 * - listener slots: rows of the listener counter table, one per listener name over the
 *   process's life.
 */
import type { Config } from '../shared/config/schema.ts';
import { DEFAULT_BACKEND_SLOTS, DEFAULT_LISTENER_SLOTS } from '../shared/counters.ts';
import type { CapacityProblem } from '../shared/messages.ts';
import { parseHostPort } from '../shared/address.ts';
import { SluiceError } from '../shared/errors.ts';
import { encodeSnapshot } from '../shared/snapshot/codec.ts';
import { DEFAULT_SLOT_CAPACITY, slotCapacityFor } from '../shared/snapshot/layout.ts';
import type { Snapshot } from '../shared/snapshot/types.ts';
import { BackendRegistry, backendId, type Backend } from './backend-registry.ts';
import { initialRecord } from './health/state-machine.ts';
import { desiredBackends, EMPTY_RUNTIME_STATE, pruneForConfig, type RuntimeState } from './runtime-state.ts';
import { SlotAllocator } from './slot-allocator.ts';

export interface CapacityLimits {
  readonly backendSlots: number;
  readonly snapshotBytes: number;
  readonly listenerSlots: number;
}

/** The bounds of a process started without `capacity:` (listener slots are always these). */
export const FIXED_LIMITS: CapacityLimits = Object.freeze({
  backendSlots: DEFAULT_BACKEND_SLOTS,
  snapshotBytes: DEFAULT_SLOT_CAPACITY,
  listenerSlots: DEFAULT_LISTENER_SLOTS,
});

/** The bounds a process started on `config` runs with (`capacity.backends` sizes both buffers). */
export function limitsFor(config: Pick<Config, 'capacity'>): CapacityLimits {
  const backendSlots = config.capacity.backends;
  return { backendSlots, snapshotBytes: slotCapacityFor(backendSlots), listenerSlots: DEFAULT_LISTENER_SLOTS };
}

/** What a state of the system takes; a field left out is not checked. */
export interface CapacityNeed {
  readonly backendSlots?: number;
  readonly snapshotBytes?: number;
  readonly listenerSlots?: number;
}

export type { CapacityProblem };

/** Every limit `need` exceeds (empty: it fits). Pure. */
export function capacityProblems(need: CapacityNeed, limits: CapacityLimits): CapacityProblem[] {
  const problems: CapacityProblem[] = [];
  const { backendSlots, snapshotBytes, listenerSlots } = need;
  if (backendSlots !== undefined && backendSlots > limits.backendSlots) {
    problems.push({
      limit: 'backend_slots',
      code: 'SLUICE_CAPACITY_EXCEEDED',
      needed: backendSlots,
      bound: limits.backendSlots,
      message: `backend_slots: needs ${backendSlots} backend counter slots, the limit is ${limits.backendSlots} (capacity.backends; a removed backend keeps its slot until its connections closed)`,
    });
  }
  if (snapshotBytes !== undefined && snapshotBytes > limits.snapshotBytes) {
    problems.push({
      limit: 'snapshot_bytes',
      code: 'SLUICE_SNAPSHOT_TOO_LARGE',
      needed: snapshotBytes,
      bound: limits.snapshotBytes,
      message: `snapshot_bytes: the snapshot would encode to ${snapshotBytes} bytes, a snapshot slot holds ${limits.snapshotBytes} bytes (fewer or shorter acl blocks, fewer backends, or a larger capacity.backends)`,
    });
  }
  if (listenerSlots !== undefined && listenerSlots > limits.listenerSlots) {
    problems.push({
      limit: 'listener_slots',
      code: 'SLUICE_CAPACITY_EXCEEDED',
      needed: listenerSlots,
      bound: limits.listenerSlots,
      message: `listener_slots: needs ${listenerSlots} listener counter slots, the limit is ${limits.listenerSlots}`,
    });
  }
  return problems;
}

/** Bytes `content` encodes to (the version's digits counted at their widest). */
export function encodedBytes(content: Omit<Snapshot, 'version'>): number {
  return encodeSnapshot({ version: 0x7fffffff, clusters: content.clusters, listeners: content.listeners }).length;
}

/**
 * A backend not running yet, as a snapshot will carry it at its largest: the widest slot
 * number and the longest first-probe reason, so the measure is not below what is published.
 */
export function placeholderBackend(limits: CapacityLimits, now: number): (cluster: string, address: string, weight: number) => Backend {
  return (cluster: string, address: string, weight: number): Backend => {
    const target = parseHostPort(address) ?? { host: address, port: 0 };
    return {
      id: backendId(cluster, address),
      cluster,
      address,
      host: target.host,
      port: target.port,
      slot: limits.backendSlots - 1,
      weight,
      health: initialRecord(false, 'first probe failed: connection refused (ECONNREFUSED)', now),
      passive: { failures: 0, successes: 0 },
    };
  };
}

/** What starting on `config` (with operators' recorded changes) takes. */
export function configNeed(config: Config, runtime: RuntimeState = EMPTY_RUNTIME_STATE, now: number = Date.now()): Required<CapacityNeed> {
  const desired = desiredBackends(config, runtime);
  const registry = new BackendRegistry(config, new SlotAllocator(0));
  const content = registry.projectedContent(config, runtime.routes, desired, placeholderBackend(limitsFor(config), now), now);
  return { backendSlots: desired.length, snapshotBytes: encodedBytes(content), listenerSlots: config.listeners.length };
}

/**
 * Throws a coded error naming every limit `config` (with operators' recorded changes, for
 * `run`) exceeds: what `sluice validate` and `sluice run` say about a file, in the same words.
 */
export function assertConfigFits(config: Config, file: string, runtime: RuntimeState = EMPTY_RUNTIME_STATE): void {
  const problems = capacityProblems(configNeed(config, pruneForConfig(runtime, config)), limitsFor(config));
  const first = problems[0];
  if (first === undefined) return;
  throw new SluiceError(first.code, `${file}: over a capacity limit:\n${problems.map((p) => `  ${p.message}`).join('\n')}`);
}
