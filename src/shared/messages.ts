/**
 * Every message that crosses a thread boundary, as tagged unions. Nothing here is sent
 * per connection: these are lifecycle and control messages only. Each receiving thread
 * handles its union with an exhaustive switch whose default throws.
 */
import type { AclConfig, Config } from './config/schema.ts';
import type { CounterDimensions } from './counters.ts';
import type { TransitionReport } from './backend-history.ts';
import type { DiscoveryStatusUpdate } from './discovery-status.ts';
import type { RegistryStatusReport } from './registry-status.ts';
import type { SnapshotBackend } from './snapshot/types.ts';

export interface ListenerBinding {
  readonly name: string;
  /** Row in the listener counter table; stable for the listener's lifetime. */
  readonly slot: number;
  readonly host: string;
  readonly port: number;
  readonly protocol: 'tcp' | 'udp';
  /** Present exactly when protocol is udp. */
  readonly udp?: UdpListenerSettings;
}

/** A UDP listener's session and socket limits, resolved from config (times in ms, sizes in bytes). */
export interface UdpListenerSettings {
  readonly sessionTimeoutMs: number;
  /** For the whole listener; each data-plane worker holds its share. */
  readonly maxSessions: number;
  /** Replies after which a session ends; 0 = unlimited. */
  readonly maxReplies: number;
  readonly recvBufferBytes: number;
  readonly sendBufferBytes: number;
}

/** A cluster's shared state buffer (queue cells, affinity table: shared/cluster-state.ts). */
export interface ClusterStateBinding {
  readonly cluster: string;
  readonly buffer: SharedArrayBuffer;
}

// ── supervisor → data-plane worker ─────────────────────────────────────────────
export type DataPlaneCommand =
  | { readonly type: 'listeners.set'; readonly listeners: readonly ListenerBinding[] }
  /** Every cluster's state buffer; send before publishing a snapshot that names a new cluster. */
  | { readonly type: 'cluster-states.set'; readonly states: readonly ClusterStateBinding[] }
  | { readonly type: 'drain'; readonly timeoutMs: number }
  | { readonly type: 'resources.query'; readonly requestId: number }
  /** Log rotation: later access-log lines go to `fd`; answered with `access-log.reopened`. */
  | { readonly type: 'access-log.reopen'; readonly fd: number }
  /** Fault injection (SLUICE_FAULT_INJECTION=1 only): throw an uncaught error. */
  | { readonly type: 'fault.crash' }
  /**
   * Handover, old side: UDP listeners report their sessions (`udp.handover.sessions`). With
   * `stop` they start none from now on, and `udp.handover.close` follows once every worker
   * answered; without, `udp.handover.share` follows.
   */
  | { readonly type: 'udp.handover.export'; readonly requestId: number; readonly stop: boolean }
  /** Handover, old side, before the successor binds: every worker's sessions, so a client the kernel moves between workers keeps its backend. */
  | { readonly type: 'udp.handover.share'; readonly tables: readonly UdpHandoverTable[] }
  | { readonly type: 'udp.handover.close' }
  /** Handover, new side: the old process's sessions; held UDP datagrams are served from now on. */
  | { readonly type: 'udp.handover.seed'; readonly tables: readonly UdpHandoverTable[] };

// ── data-plane worker → supervisor ─────────────────────────────────────────────
export type DataPlaneEvent =
  | { readonly type: 'listeners.ready'; readonly listening: readonly string[] }
  | {
      readonly type: 'listen.failed';
      readonly listener: string;
      readonly address: string;
      readonly code: string;
      readonly message: string;
    }
  | { readonly type: 'drain.progress'; readonly connections: number }
  | { readonly type: 'drained'; readonly cut: number }
  | { readonly type: 'resources'; readonly requestId: number; readonly report: ResourceReport }
  /** Every line meant for the previous access-log descriptor has been written to it. */
  | { readonly type: 'access-log.reopened'; readonly fd: number }
  | { readonly type: 'udp.handover.sessions'; readonly requestId: number; readonly tables: readonly UdpHandoverTable[] };

/**
 * One UDP session handed over from an old process to its successor: which backend the
 * client was on. `idleMs` (not a time: the processes' monotonic clocks differ) lets the new
 * side forget it when the session would have timed out anyway.
 */
export interface UdpHandoverSession {
  /** Client address:port, as the session table keys it. */
  readonly client: string;
  readonly cluster: string;
  /** Backend id (`cluster:address`), stable across processes on the same config. */
  readonly backend: string;
  readonly idleMs: number;
}

export interface UdpHandoverTable {
  readonly listener: string;
  readonly sessions: readonly UdpHandoverSession[];
}

export interface ResourceReport {
  readonly worker: number;
  readonly connections: number;
  /** Open UDP sessions over all of the worker's UDP listeners. */
  readonly udpSessions: number;
  /** V8 heap in use by the worker's isolate (bytes), for memory-bound checks. */
  readonly heapUsedBytes: number;
  /** process.getActiveResourcesInfo() of the worker thread, counted by kind. */
  readonly resources: Readonly<Record<string, number>>;
}

export interface AccessLogSettings {
  readonly enabled: boolean;
  /** Fraction of connections logged, 0..1. */
  readonly sampling: number;
  /**
   * File descriptor the lines are appended to: the supervisor opens the configured file
   * once (so a bad path fails start-up, not a worker) and every worker shares the fd;
   * 1 = stdout.
   */
  readonly fd: number;
}

export interface DataPlaneWorkerData {
  readonly worker: number;
  readonly snapshotBuffer: SharedArrayBuffer;
  readonly counterBuffer: SharedArrayBuffer;
  readonly counterDims: CounterDimensions;
  readonly clusterStates: readonly ClusterStateBinding[];
  /** Per-IP and per-listener connection limits shared by every worker (shared/ip-limits.ts). */
  readonly ipLimitBuffer: SharedArrayBuffer;
  readonly logLevel: string;
  readonly accessLog: AccessLogSettings;
  /**
   * Handover, new side: UDP datagrams wait (bounded) until `udp.handover.seed` brings the old
   * process's sessions, so no client is given a new backend meanwhile.
   */
  readonly holdUdpForHandover?: boolean;
}

// ── supervisor → control-plane worker ──────────────────────────────────────────
export type ControlPlaneCommand =
  | { readonly type: 'shutdown' }
  /**
   * A reloaded config, applied as a difference (or with `dryRun` only planned and checked
   * against the capacity limits); answered with `config.applied`.
   */
  | { readonly type: 'config.apply'; readonly requestId: number; readonly config: Config; readonly dryRun: boolean }
  /** Fault injection (SLUICE_FAULT_INJECTION=1 only): throw an uncaught error. */
  | { readonly type: 'fault.crash' }
  | { readonly type: 'stats.query'; readonly requestId: number }
  /** An operator's change to one backend (admin API); answered with `backend.result`. */
  | { readonly type: 'backend.command'; readonly requestId: number; readonly command: BackendCommand }
  /** An operator's new acl for a listener (admin API); answered with `listener.acl.result`. */
  | { readonly type: 'listener.acl'; readonly requestId: number; readonly listener: string; readonly acl: AclConfig }
  /** An operator's new split of a listener's connections (admin API); answered with `routes.result`. */
  | { readonly type: 'routes.command'; readonly requestId: number; readonly command: RoutesCommand };

/** Set the weighted clusters a listener sends new connections to (PATCH /listeners/:name/routes). */
export interface RoutesCommand {
  readonly listener: string;
  readonly routes: readonly { readonly cluster: string; readonly weight: number }[];
}

export type RoutesCommandError = 'NOT_FOUND' | 'BAD_REQUEST' | 'UNAVAILABLE' | 'CONFLICT';

export type RoutesCommandResult =
  | {
      readonly ok: true;
      /** The published version that holds the new routes (the current one if nothing changed). */
      readonly version: number;
      readonly listener: string;
      readonly routes: readonly { readonly cluster: string; readonly weight: number }[];
      /** With a registry: the etcd revision of the write, applied here before the answer. */
      readonly revision?: number;
    }
  | { readonly ok: false; readonly error: RoutesCommandError; readonly message: string };

/**
 * What the admin API asks of the control plane, one backend at a time. Ids are
 * `cluster:address`. Each is applied in arrival order and answered with the snapshot
 * version that holds its effect.
 */
export type BackendCommand =
  | { readonly op: 'add'; readonly cluster: string; readonly address: string; readonly weight: number }
  | { readonly op: 'remove'; readonly id: string; readonly force: boolean }
  | { readonly op: 'drain'; readonly id: string }
  | { readonly op: 'undrain'; readonly id: string }
  | { readonly op: 'weight'; readonly id: string; readonly weight: number };

/** Why a backend command was refused; the admin API maps each to an HTTP status. */
export type BackendCommandError = 'BAD_REQUEST' | 'NOT_FOUND' | 'CONFLICT' | 'NO_CAPACITY' | 'UNAVAILABLE';

export type BackendCommandResult =
  | {
      readonly ok: true;
      /** The published version that holds the change (the current one if nothing changed). */
      readonly version: number;
      readonly cluster: string;
      /** The backend as that version publishes it; undefined once it left the snapshot. */
      readonly backend: SnapshotBackend | undefined;
      /** With a registry: the etcd revision of the write, applied here before the answer. */
      readonly revision?: number;
    }
  | { readonly ok: false; readonly error: BackendCommandError; readonly message: string };

/** A backend as a reload plan names it (controlplane/reload-plan.ts). */
export interface PlannedBackend {
  readonly cluster: string;
  readonly address: string;
  readonly weight: number;
  readonly drained: boolean;
}

/** What a reload does to backends (controlplane/reload-plan.ts says how it is decided). */
export interface BackendPlan {
  /** Not running: added (probed first). */
  readonly add: readonly PlannedBackend[];
  /** Being removed but listed again: the removal is cancelled, the backend is back in service. */
  readonly restore: readonly PlannedBackend[];
  /** No longer desired and without connections: gone with this reload (ids). */
  readonly remove: readonly string[];
  /** No longer desired but holding connections: out of rotation, removed once they close (ids). */
  readonly drain: readonly string[];
  readonly reweight: readonly { readonly id: string; readonly from: number; readonly to: number }[];
  /** Desired and running: untouched (ids). */
  readonly keep: readonly string[];
}

/** A fixed capacity limit a change would exceed (controlplane/capacity.ts). */
export interface CapacityProblem {
  readonly limit: 'backend_slots' | 'snapshot_bytes' | 'listener_slots';
  readonly code: 'SLUICE_CAPACITY_EXCEEDED' | 'SLUICE_SNAPSHOT_TOO_LARGE';
  readonly needed: number;
  readonly bound: number;
  readonly message: string;
}

/** The answer to `config.apply`: applied (or, for a dry run, would be), or refused whole over a limit. */
export type ConfigApplyResult =
  | { readonly ok: true; readonly version: number; readonly plan: BackendPlan; readonly dryRun: boolean }
  | { readonly ok: false; readonly plan: BackendPlan; readonly problems: readonly CapacityProblem[]; readonly message?: string };

// ── control-plane worker → supervisor ──────────────────────────────────────────
export type ControlPlaneEvent =
  | { readonly type: 'ready'; readonly version: number; readonly backends: number }
  | { readonly type: 'published'; readonly version: number }
  | { readonly type: 'transitions'; readonly reports: readonly TransitionReport[] }
  /** A discovered cluster's status when it changed; `answer` only when the answer did. */
  | { readonly type: 'discovery.status'; readonly status: DiscoveryStatusUpdate }
  /** The registry's state as this instance sees it: after every applied revision and every up/down flip. */
  | { readonly type: 'registry.status'; readonly status: RegistryStatusReport }
  | { readonly type: 'config.applied'; readonly requestId: number; readonly result: ConfigApplyResult }
  | { readonly type: 'stats'; readonly requestId: number; readonly stats: ControlPlaneStats }
  | { readonly type: 'backend.result'; readonly requestId: number; readonly result: BackendCommandResult }
  | { readonly type: 'listener.acl.result'; readonly requestId: number; readonly result: ListenerAclResult }
  | { readonly type: 'routes.result'; readonly requestId: number; readonly result: RoutesCommandResult };

/** The answer to `listener.acl`: the published version whose snapshot holds the new acl. */
export type ListenerAclResult =
  | { readonly ok: true; readonly version: number; readonly acl: AclConfig; readonly revision?: number }
  | { readonly ok: false; readonly error: 'NOT_FOUND' | 'BAD_REQUEST' | 'UNAVAILABLE' | 'NO_CAPACITY' | 'CONFLICT'; readonly message: string };

/** Counters of the control plane's own work, ready to become metrics. */
export interface ControlPlaneStats {
  readonly snapshotVersion: number;
  /** Snapshots published by this worker (only real changes are published). */
  readonly snapshotPublishes: number;
  /** Backend state changes (healthy / draining / unhealthy / removed). */
  readonly healthTransitions: number;
  readonly backends: number;
  readonly probes: number;
  readonly probeFailures: number;
  /** Probes not started because the backend's previous one had not settled. */
  readonly probesSkipped: number;
  readonly probesInFlight: number;
  readonly probesQueued: number;
}

export interface ControlPlaneWorkerData {
  readonly config: Config;
  readonly snapshotBuffer: SharedArrayBuffer;
  readonly counterBuffer: SharedArrayBuffer;
  readonly counterDims: CounterDimensions;
  readonly logLevel: string;
}

export function unknownMessage(thread: string, message: unknown): Error {
  return new Error(`${thread}: unknown message ${JSON.stringify(message)}`);
}
