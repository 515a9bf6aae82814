/**
 * Operators' changes to backends (the admin API's writes), applied by the control plane,
 * the single writer. Each command is checked first and refused whole (nothing changes),
 * then recorded in the runtime state (written to the state file before anything is
 * published, so a change that is live is also durable), then applied through the health
 * state machine, then published; the answer names the snapshot version that holds it.
 */
import { canonicalHost, parseHostPort } from '../shared/address.ts';
import type { Config } from '../shared/config/schema.ts';
import type { BackendCommand, BackendCommandResult, CapacityProblem } from '../shared/messages.ts';
import type { SnapshotBackend } from '../shared/snapshot/types.ts';
import { backendId, type Backend, type BackendRegistry, type Cluster } from './backend-registry.ts';
import type { HealthEvent, HealthRecord } from './health/state-machine.ts';
import { recordCommand, type RuntimeState } from './runtime-state.ts';
import { addressRefusal } from './backend-address.ts';
import type { Lookup } from './host-resolution.ts';
import type { DiscoveryConfig } from '../shared/config/discovery-schema.ts';
import { describeSource } from './discovery/discovery-manager.ts';

/** What a command needs of the control plane. */
export interface CommandCore {
  readonly registry: BackendRegistry;
  readonly config: () => Config;
  readonly runtime: () => RuntimeState;
  /** Persists the runtime state (state file) and keeps it; throws when it cannot be written. */
  readonly saveRuntime: (state: RuntimeState) => Promise<void>;
  readonly now: () => number;
  /** Host-name lookups for new addresses (the system resolver unless a test passes one). */
  readonly lookup?: Lookup;
  /** The capacity limits adding this backend would exceed (capacity.ts); empty when it fits. */
  readonly addProblems: (cluster: string, address: string, weight: number) => readonly CapacityProblem[];
  readonly firstVerdict: (cluster: Cluster, address: string) => Promise<HealthRecord>;
  /** Adds and starts probing a backend. */
  readonly addBackend: (cluster: Cluster, address: string, weight: number, health: HealthRecord) => Backend;
  readonly apply: (backend: Backend, event: HealthEvent) => void;
  /** Lets a drain with no connection left end now, and a removed backend without connections leave. */
  readonly settle: (backend: Backend) => void;
  /** Publishes if anything changed; the version that holds the current state. */
  readonly publish: () => number;
  readonly published: (id: string) => SnapshotBackend | undefined;
}

type Refusal = Extract<BackendCommandResult, { ok: false }>;

function refuse(error: Refusal['error'], message: string): Refusal {
  return { ok: false, error, message };
}

export async function runBackendCommand(core: CommandCore, command: BackendCommand): Promise<BackendCommandResult> {
  if (command.op === 'add') return add(core, command.cluster, command.address, command.weight);
  const backend = core.registry.get(command.id);
  const refusal = checkExisting(core, command, backend);
  if (refusal !== undefined) return refusal;
  if (backend === undefined) return refuse('NOT_FOUND', `no backend ${command.id}`);
  if (backend.health.admin === 'remove' && command.op === 'remove' && !command.force) return done(core, backend.cluster, backend.id);
  const unsaved = await record(core, command);
  if (unsaved !== undefined) return unsaved;
  switch (command.op) {
    case 'remove':
      core.apply(backend, { type: 'remove', force: command.force, now: core.now() });
      break;
    case 'drain':
      core.apply(backend, { type: 'drain', now: core.now() });
      break;
    case 'undrain':
      core.apply(backend, { type: 'undrain', now: core.now() });
      break;
    case 'weight':
      backend.weight = command.weight;
      break;
    default:
      throw new Error(`backend commands: unknown op ${JSON.stringify(command satisfies never)}`);
  }
  core.settle(backend);
  return done(core, backend.cluster, backend.id);
}

/**
 * Why `command` cannot be applied to what runs now, or undefined when it can. With a registry
 * these checks run before the write (registry-commands.ts), so a refused command writes nothing.
 */
export async function checkBackendCommand(core: CheckCore, command: BackendCommand): Promise<Refusal | undefined> {
  if (command.op === 'add') return checkAdd(core, command.cluster, command.address, command.weight);
  return checkExisting(core, command, core.registry.get(command.id));
}

function checkExisting(core: Pick<CommandCore, 'registry'>, command: Exclude<BackendCommand, { op: 'add' }>, backend: Backend | undefined): Refusal | undefined {
  if (backend === undefined || backend.health.state === 'removed') return refuse('NOT_FOUND', `no backend ${command.id}`);
  const discovery = core.registry.cluster(backend.cluster)?.config.discovery;
  if (command.op === 'remove' && discovery !== undefined) return refuse('CONFLICT', ownedByDiscovery(backend.cluster, discovery));
  if (backend.health.admin === 'remove' && command.op !== 'remove') return refuse('CONFLICT', `backend ${backend.id} is being removed`);
  return undefined;
}

/** What the checks read of the control plane. */
export type CheckCore = Pick<CommandCore, 'registry' | 'addProblems' | 'lookup'>;

async function checkAdd(core: CheckCore, clusterName: string, address: string, weight: number): Promise<Refusal | undefined> {
  const cluster = core.registry.cluster(clusterName);
  if (cluster === undefined) {
    const known = [...core.registry.clusters()].map((c) => c.name).join(', ');
    return refuse('NOT_FOUND', `unknown cluster "${clusterName}"; known: ${known}`);
  }
  if (cluster.config.discovery !== undefined) return refuse('CONFLICT', ownedByDiscovery(cluster.name, cluster.config.discovery));
  const same = sameAddressIn(cluster, address);
  if (same !== undefined) {
    const removing = same.health.admin === 'remove';
    return refuse(
      'CONFLICT',
      removing
        ? `backend ${same.id} is still being removed; add it again once its connections closed`
        : `cluster ${cluster.name} already has a backend at ${address} (${same.id})`,
    );
  }
  const refusal = await addressRefusal(cluster, address, core.lookup);
  if (refusal !== undefined) return refuse(refusal.error, refusal.message);
  const problems = core.addProblems(cluster.name, address, weight);
  if (problems.length > 0) return refuse('NO_CAPACITY', `cannot add ${backendId(cluster.name, address)}: ${problems.map((p) => p.message).join('; ')}`);
  return undefined;
}

async function add(core: CommandCore, clusterName: string, address: string, weight: number): Promise<BackendCommandResult> {
  const refusal = await checkAdd(core, clusterName, address, weight);
  if (refusal !== undefined) return refusal;
  const cluster = core.registry.cluster(clusterName);
  if (cluster === undefined) return refuse('NOT_FOUND', `unknown cluster "${clusterName}"`);
  // Commands run one at a time and only commands add backends or drop clusters, so what was
  // checked above still holds after the probe.
  const health = await core.firstVerdict(cluster, address);
  const unsaved = await record(core, { op: 'add', cluster: cluster.name, address, weight });
  if (unsaved !== undefined) return unsaved;
  // A backend joining a running cluster ramps up like one that recovered.
  const backend = core.addBackend(cluster, address, weight, health.up ? { ...health, rampFrom: health.since } : health);
  return done(core, cluster.name, backend.id);
}

/** One source of backends per cluster: a discovered cluster's set is its source's to change. */
function ownedByDiscovery(cluster: string, discovery: DiscoveryConfig): string {
  return `cluster ${cluster} takes its backends from discovery (${describeSource(discovery)}): add or remove them there; drain, undrain and weight work here`;
}

/** A backend of `cluster` at the same host and port, however the host is spelt (`[::1]` = `[0:0::1]`). */
function sameAddressIn(cluster: Cluster, address: string): Backend | undefined {
  const exact = cluster.backends.get(backendId(cluster.name, address));
  if (exact !== undefined) return exact;
  const target = parseHostPort(address);
  if (target === undefined) return undefined;
  const host = canonicalHost(target.host);
  for (const b of cluster.backends.values()) if (b.port === target.port && canonicalHost(b.host) === host) return b;
  return undefined;
}

/** Records the command in the runtime state first; a state file that cannot be written refuses it. */
async function record(core: CommandCore, command: BackendCommand): Promise<Refusal | undefined> {
  const before = core.runtime();
  const after = recordCommand(before, command, core.config());
  if (after === before) return undefined;
  try {
    await core.saveRuntime(after);
    return undefined;
  } catch (error) {
    return refuse('UNAVAILABLE', `the state file cannot be written, so the change was not made: ${(error as Error).message}`);
  }
}

export function done(core: Pick<CommandCore, 'publish' | 'published'>, cluster: string, id: string): BackendCommandResult {
  const version = core.publish();
  return { ok: true, version, cluster, backend: core.published(id) };
}
