/**
 * What operators changed at runtime, on top of config.yaml: backends added, config backends
 * removed, backends drained, config backends reweighted, listeners' routes re-split, listener
 * acls replaced. Pure: the control plane records
 * each applied command here, the state file persists it, and start-up re-applies it, so a
 * restart keeps what operators did.
 *
 * Invariants (kept by `recordCommand` and `pruneForConfig`):
 * - an id is in at most one of `added` / `removed`; `weights` names only config backends and
 *   backends of discovered clusters (an operator's weight outlives the source's refreshes);
 * - `removed` names only backends the config declares (anything else was runtime-added);
 * - nothing names a cluster the config lacks;
 * - `routes` names only listeners the config declares, each with routes that differ from
 *   the config's and name only configured clusters.
 */
import { listenerRoutes, type AclConfig, type Config, type ListenerConfig } from '../shared/config/schema.ts';
import type { BackendCommand } from '../shared/messages.ts';
import { backendId } from './backend-registry.ts';
import { sameAcl } from './listener-snapshot.ts';

export interface AddedBackend {
  readonly cluster: string;
  readonly address: string;
  readonly weight: number;
}

/** One weighted target of a listener (PATCH /listeners/:name/routes). */
export interface RouteEntry {
  readonly cluster: string;
  readonly weight: number;
}

export interface RuntimeState {
  readonly added: readonly AddedBackend[];
  readonly removed: readonly string[];
  readonly drained: readonly string[];
  readonly weights: Readonly<Record<string, number>>;
  /** Listener name → the routes an operator set for it. */
  readonly routes: Readonly<Record<string, readonly RouteEntry[]>>;
  /** Listener acls set through the admin API, by listener name (absent = none). */
  readonly acls?: Readonly<Record<string, ListenerAclOverride>>;
}

/**
 * An acl set at runtime, and the listener's acl in config.yaml at that time: the override
 * lapses once the file's acl for that listener changes (the file is then the newer word).
 */
export interface ListenerAclOverride {
  readonly acl: AclConfig;
  readonly file_acl: AclConfig;
}

export const EMPTY_RUNTIME_STATE: RuntimeState = Object.freeze({ added: [], removed: [], drained: [], weights: {}, routes: {} });

/** A backend as the running system should have it: config plus operators' changes. */
export interface DesiredBackend {
  readonly cluster: string;
  readonly address: string;
  readonly weight: number;
  readonly drained: boolean;
}

/** By config: a loaded config is never changed, and rebuilding this per command cost ~150 ms at 100,000 backends. */
const declaredWeights = new WeakMap<Config, ReadonlyMap<string, number>>();

function configWeights(config: Config): ReadonlyMap<string, number> {
  const known = declaredWeights.get(config);
  if (known !== undefined) return known;
  const weights = new Map<string, number>();
  for (const cluster of config.clusters) for (const b of cluster.backends) weights.set(backendId(cluster.name, b.address), b.weight);
  declaredWeights.set(config, weights);
  return weights;
}

/** The state after `command` was applied successfully (a refused command records nothing). */
export function recordCommand(state: RuntimeState, command: BackendCommand, config: Config): RuntimeState {
  const declared = configWeights(config);
  switch (command.op) {
    case 'add': {
      const id = backendId(command.cluster, command.address);
      if (declared.has(id)) {
        // A config backend an operator removed and now adds back.
        const weights = { ...state.weights };
        if (declared.get(id) === command.weight) Reflect.deleteProperty(weights, id);
        else weights[id] = command.weight;
        return { ...state, removed: state.removed.filter((r) => r !== id), weights };
      }
      return { ...state, added: [...state.added.filter((a) => backendId(a.cluster, a.address) !== id), { cluster: command.cluster, address: command.address, weight: command.weight }] };
    }
    case 'remove': {
      const { id } = command;
      const weights = { ...state.weights };
      Reflect.deleteProperty(weights, id);
      return {
        ...state,
        added: state.added.filter((a) => backendId(a.cluster, a.address) !== id),
        removed: declared.has(id) && !state.removed.includes(id) ? [...state.removed, id] : state.removed,
        drained: state.drained.filter((d) => d !== id),
        weights,
        routes: state.routes,
      };
    }
    case 'drain':
      return state.drained.includes(command.id) ? state : { ...state, drained: [...state.drained, command.id] };
    case 'undrain':
      return { ...state, drained: state.drained.filter((d) => d !== command.id) };
    case 'weight': {
      const { id, weight } = command;
      if (state.added.some((a) => backendId(a.cluster, a.address) === id)) {
        return { ...state, added: state.added.map((a) => (backendId(a.cluster, a.address) === id ? { ...a, weight } : a)) };
      }
      const weights = { ...state.weights };
      if (declared.get(id) === weight) Reflect.deleteProperty(weights, id);
      else weights[id] = weight;
      return { ...state, weights };
    }
    default:
      throw new Error(`runtime state: unknown command ${JSON.stringify(command satisfies never)}`);
  }
}

/** The state with `listener`'s acl set to `acl` at runtime. */
export function recordListenerAcl(state: RuntimeState, listener: ListenerConfig, acl: AclConfig): RuntimeState {
  const fileAcl = listener.acl ?? { allow: [], deny: [] };
  return { ...state, acls: { ...state.acls, [listener.name]: { acl, file_acl: fileAcl } } };
}

/** Overrides whose listener is gone or whose file acl changed since they were set are dropped. */
function pruneAcls(acls: RuntimeState['acls'], config: Config): RuntimeState['acls'] {
  if (acls === undefined) return undefined;
  const kept: Record<string, ListenerAclOverride> = {};
  for (const [name, override] of Object.entries(acls)) {
    const listener = config.listeners.find((l) => l.name === name);
    if (listener !== undefined && sameAcl(listener.acl, override.file_acl)) kept[name] = override;
  }
  return kept;
}

/** Drops what no longer fits `config` (a reload removed its cluster, or its backend became a config one). */
export function pruneForConfig(state: RuntimeState, config: Config): RuntimeState {
  const clusters = new Set(config.clusters.map((c) => c.name));
  const declared = configWeights(config);
  const clusterOf = (id: string): string => id.slice(0, id.indexOf(':'));
  const weights: Record<string, number> = {};
  const discovered = new Set(config.clusters.filter((c) => c.discovery !== undefined).map((c) => c.name));
  for (const [id, weight] of Object.entries(state.weights)) if (declared.has(id) || discovered.has(clusterOf(id))) weights[id] = weight;
  const routes: Record<string, readonly RouteEntry[]> = {};
  const listeners = new Map(config.listeners.map((l) => [l.name, l]));
  for (const [name, entries] of Object.entries(state.routes)) {
    const listener = listeners.get(name);
    if (listener === undefined || !entries.every((r) => clusters.has(r.cluster))) continue;
    if (!sameRoutes(entries, listenerRoutes(listener))) routes[name] = entries;
  }
  const acls = pruneAcls(state.acls, config);
  return {
    added: state.added.filter((a) => clusters.has(a.cluster) && !declared.has(backendId(a.cluster, a.address))),
    removed: state.removed.filter((id) => declared.has(id)),
    drained: state.drained.filter((id) => clusters.has(clusterOf(id))),
    weights,
    routes,
    ...(acls === undefined ? {} : { acls }),
  };
}

/**
 * The state after an operator set `listener`'s routes: an override of the config's routes,
 * or none when they equal the config's (so config.yaml is in charge again).
 */
export function recordRoutes(state: RuntimeState, listener: string, entries: readonly RouteEntry[], config: Config): RuntimeState {
  const declared = config.listeners.find((l) => l.name === listener);
  const routes = { ...state.routes };
  if (declared !== undefined && sameRoutes(entries, listenerRoutes(declared))) Reflect.deleteProperty(routes, listener);
  else routes[listener] = entries.map((r) => ({ cluster: r.cluster, weight: r.weight }));
  return { ...state, routes };
}

/** Same clusters with the same weights, in the same order. */
export function sameRoutes(a: readonly RouteEntry[], b: readonly RouteEntry[]): boolean {
  return (
    a.length === b.length &&
    a.every((r, i) => {
      const other = b[i];
      return other !== undefined && other.cluster === r.cluster && other.weight === r.weight;
    })
  );
}

/** Config backends (minus removed, reweighted) in config order, then runtime-added ones. */
export function desiredBackends(config: Config, state: RuntimeState): DesiredBackend[] {
  const removed = new Set(state.removed);
  const drained = new Set(state.drained);
  const desired: DesiredBackend[] = [];
  for (const cluster of config.clusters) {
    for (const b of cluster.backends) {
      const id = backendId(cluster.name, b.address);
      if (removed.has(id)) continue;
      desired.push({ cluster: cluster.name, address: b.address, weight: state.weights[id] ?? b.weight, drained: drained.has(id) });
    }
  }
  const clusters = new Set(config.clusters.map((c) => c.name));
  for (const a of state.added) {
    if (!clusters.has(a.cluster)) continue;
    desired.push({ ...a, drained: drained.has(backendId(a.cluster, a.address)) });
  }
  return desired;
}
