/**
 * What a reload does to backends, computed before anything changes (pure: no I/O, no clock).
 *
 * The rule: after a reload the running set equals what the new file plus the operators'
 * recorded changes say (`desiredBackends`), whatever happened before. So the plan compares
 * the desired set with the RUNNING set (not with the previous file): a backend that an
 * earlier reload or operator started to remove and that the file lists again has its
 * removal cancelled, instead of being lost once its connections close.
 *
 * Lives in controlplane/ (not supervisor/) because the control plane applies it and
 * controlplane/ must not import supervisor/; the admin API's dry run answers with it.
 */
import { listenerRoutes, type Config } from '../shared/config/schema.ts';
import type { BackendPlan } from '../shared/messages.ts';
import type { AdminIntent } from '../shared/snapshot/types.ts';
import { backendId } from './backend-registry.ts';
import {
  desiredBackends,
  pruneForConfig,
  recordRoutes,
  sameRoutes,
  type DesiredBackend,
  type RuntimeState,
} from './runtime-state.ts';

/** A backend the control plane runs now (any state, including a pending removal). */
export interface RunningBackend {
  readonly id: string;
  readonly cluster: string;
  readonly weight: number;
  readonly admin: AdminIntent;
  readonly activeConnections: number;
}

export interface Reweight {
  readonly id: string;
  readonly from: number;
  readonly to: number;
}

export type { BackendPlan };

export interface ReloadPlan {
  readonly backends: BackendPlan;
  /** The operators' recorded changes once the reload is applied (what the state file will hold). */
  readonly runtime: RuntimeState;
}

/**
 * Operators' changes as they stand after a reload to `next`: what no longer fits is dropped,
 * and where the file itself changed a weight or a listener's routes, the file wins over an
 * earlier runtime change (the file is then the newer word).
 */
export function runtimeAfterReload(previous: Config, next: Config, runtime: RuntimeState): RuntimeState {
  let state = pruneForConfig(runtime, next);
  for (const listener of next.listeners) {
    const old = previous.listeners.find((l) => l.name === listener.name);
    if (old !== undefined && !sameRoutes(listenerRoutes(old), listenerRoutes(listener)) && listener.name in state.routes) {
      state = recordRoutes(state, listener.name, listenerRoutes(listener), next);
    }
  }
  const before = fileWeights(previous);
  const changed = [...fileWeights(next)].filter(([id, weight]) => before.has(id) && before.get(id) !== weight && id in state.weights);
  if (changed.length === 0) return state;
  // What recordCommand does for each, at once: thousands of changes must not cost n² (9,000 took seconds).
  const weights = { ...state.weights };
  for (const [id] of changed) Reflect.deleteProperty(weights, id);
  return { ...state, weights };
}

export function planReload(previous: Config, next: Config, runtime: RuntimeState, running: readonly RunningBackend[]): ReloadPlan {
  const after = runtimeAfterReload(previous, next, runtime);
  const desired = desiredBackends(next, after);
  const wanted = new Map(desired.map((d) => [backendId(d.cluster, d.address), d]));
  const runningById = new Map(running.map((r) => [r.id, r]));
  const add: DesiredBackend[] = [];
  const restore: DesiredBackend[] = [];
  const reweight: Reweight[] = [];
  const keep: string[] = [];
  for (const [id, want] of wanted) {
    const now = runningById.get(id);
    if (now === undefined) add.push(want);
    else if (now.admin === 'remove') restore.push(want);
    else if (now.weight !== want.weight) reweight.push({ id, from: now.weight, to: want.weight });
    else keep.push(id);
  }
  const remove: string[] = [];
  const drain: string[] = [];
  for (const r of running) {
    // One already on its way out stays so (an operator's removal, or an earlier reload's).
    if (wanted.has(r.id) || r.admin === 'remove') continue;
    (r.activeConnections > 0 ? drain : remove).push(r.id);
  }
  return { backends: { add, restore, remove, drain, reweight, keep }, runtime: forgetLeaving(after, new Set([...remove, ...drain])) };
}

/**
 * An operator's drain or weight of a backend the reload takes out ends with it (listed again
 * later, it starts from the file); `recordCommand`'s remove, for many ids at once. None of
 * them is desired, so none is in `added`, and `removed` needs nothing.
 */
function forgetLeaving(state: RuntimeState, leaving: ReadonlySet<string>): RuntimeState {
  if (leaving.size === 0) return state;
  const weights: Record<string, number> = {};
  for (const [id, weight] of Object.entries(state.weights)) if (!leaving.has(id)) weights[id] = weight;
  return { ...state, drained: state.drained.filter((id) => !leaving.has(id)), weights };
}

function fileWeights(config: Config): Map<string, number> {
  const weights = new Map<string, number>();
  for (const cluster of config.clusters) for (const b of cluster.backends) weights.set(backendId(cluster.name, b.address), b.weight);
  return weights;
}
