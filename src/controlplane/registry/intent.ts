/**
 * The bridge between the registry and the operator intent the control plane already knows
 * (runtime-state.ts): with a registry, the applied registry state takes the place of the
 * state file. Pure, both ways:
 *
 * - `intentFromRegistry`: applied entries -> a `RuntimeState` for `desiredBackends()`;
 * - `mutationFor*`: an admin command -> the one key to put or delete, guarded by the mod
 *   revision of the entry the decision was based on.
 *
 * Meaning of the keys (docs/fleet.md):
 * - `backends/<address>`: the backend exists (registered by itself, or added by an operator);
 *   for a backend config.yaml declares, a registration adds nothing.
 * - `overrides/<address>`: `drained`, `weight` (beats the registration's and the config's),
 *   `removed` (a config backend an operator removed). Never leased: a drain survives the
 *   backend's registration expiring and coming back.
 */
import { listenerRoutes, type AclConfig, type Config } from '../../shared/config/schema.ts';
import type { BackendCommand, RoutesCommand } from '../../shared/messages.ts';
import { backendId } from '../backend-registry.ts';
import { pruneForConfig, sameRoutes, type AddedBackend, type ListenerAclOverride, type RouteEntry, type RuntimeState } from '../runtime-state.ts';
import { formatKey, isEntryOf, type OverrideValue, type RegistryEntry, type RegistryKey } from './keys.ts';
import type { RegistryState } from './registry-state.ts';

/** One guarded write: put `entry` (or delete `key` when `entry` is null) if the key is still at `expectedModRevision`. */
export type Mutation =
  | { readonly op: 'put'; readonly entry: RegistryEntry; readonly expectedModRevision: number }
  | { readonly op: 'delete'; readonly key: RegistryKey; readonly expectedModRevision: number };

/** A command that needs no write: it would not change the registry. */
export interface NoMutation {
  readonly op: 'none';
}

function declaredBackends(config: Config): Map<string, number> {
  const weights = new Map<string, number>();
  for (const cluster of config.clusters) for (const b of cluster.backends) weights.set(backendId(cluster.name, b.address), b.weight);
  return weights;
}

/** The operator intent the registry holds, in the control plane's terms, pruned to `config`. */
export function intentFromRegistry(state: RegistryState, config: Config): RuntimeState {
  const declared = declaredBackends(config);
  const registered = new Map<string, AddedBackend>();
  const overrides = new Map<string, OverrideValue>();
  const routes: Record<string, readonly RouteEntry[]> = {};
  const acls: Record<string, ListenerAclOverride> = {};
  for (const { entry } of state.applied.values()) {
    if (isEntryOf(entry, 'backend')) {
      const { cluster, address } = entry.key;
      registered.set(backendId(cluster, address), { cluster, address, weight: entry.value.weight });
    } else if (isEntryOf(entry, 'override')) {
      overrides.set(backendId(entry.key.cluster, entry.key.address), entry.value);
    } else if (isEntryOf(entry, 'routes')) {
      routes[entry.key.listener] = entry.value.routes;
    } else if (isEntryOf(entry, 'acl')) {
      const listener = config.listeners.find((l) => l.name === entry.key.listener);
      // The registry's acl stands until changed in the registry: recording the file's
      // current acl keeps pruneForConfig from lapsing it.
      if (listener !== undefined) acls[listener.name] = { acl: entry.value, file_acl: listener.acl ?? { allow: [], deny: [] } };
    }
  }
  const added: AddedBackend[] = [];
  for (const [id, backend] of registered) {
    if (declared.has(id)) continue;
    added.push({ ...backend, weight: overrides.get(id)?.weight ?? backend.weight });
  }
  const removed: string[] = [];
  const drained: string[] = [];
  const weights: Record<string, number> = {};
  const discovered = new Set(config.clusters.filter((c) => c.discovery !== undefined).map((c) => c.name));
  for (const [id, override] of overrides) {
    if (override.drained === true) drained.push(id);
    // A discovered backend's weight is an operator's like a declared one's (its source owns the set, not the weight).
    if (override.weight !== undefined && discovered.has(id.slice(0, id.indexOf(':')))) weights[id] = override.weight;
    if (!declared.has(id)) continue;
    if (override.removed === true) removed.push(id);
    if (override.weight !== undefined) weights[id] = override.weight;
  }
  return pruneForConfig({ added, removed, drained, weights, routes, acls }, config);
}

/** The registry key of a backend id (`cluster:address`). */
function addressKey<K extends 'backend' | 'override'>(kind: K, id: string): { readonly kind: K; readonly cluster: string; readonly address: string } {
  const colon = id.indexOf(':');
  return { kind, cluster: id.slice(0, colon), address: id.slice(colon + 1) };
}

function appliedOf(state: RegistryState, key: RegistryKey): { entry: RegistryEntry; modRevision: number } | undefined {
  return state.applied.get(formatKey(state.prefix, key));
}

/** Put the override with `change` merged in, or delete it when nothing is left in it. */
function overrideMutation(state: RegistryState, id: string, change: Partial<Record<keyof OverrideValue, unknown>>): Mutation | NoMutation {
  const key = addressKey('override', id);
  const current = appliedOf(state, key);
  const before = current !== undefined && isEntryOf(current.entry, 'override') ? current.entry.value : {};
  const merged: Record<string, unknown> = { ...before, ...change };
  for (const field of Object.keys(merged)) if (merged[field] === undefined || merged[field] === false) Reflect.deleteProperty(merged, field);
  const next = merged as OverrideValue;
  const expectedModRevision = current?.modRevision ?? 0;
  if (JSON.stringify(next) === JSON.stringify(before)) return { op: 'none' };
  if (Object.keys(next).length === 0) return current === undefined ? { op: 'none' } : { op: 'delete', key, expectedModRevision };
  return { op: 'put', entry: { key, value: next }, expectedModRevision };
}

/**
 * The write for an admin backend command. The caller has checked that the backend exists
 * (or, for add, that its cluster does), as it does without a registry.
 */
export function mutationForBackend(state: RegistryState, config: Config, command: BackendCommand): Mutation | NoMutation {
  const declared = declaredBackends(config);
  switch (command.op) {
    case 'add': {
      const id = backendId(command.cluster, command.address);
      // A config backend an operator removed and now adds back: lift the removal.
      if (declared.has(id)) return overrideMutation(state, id, { removed: undefined, weight: declared.get(id) === command.weight ? undefined : command.weight });
      const key = addressKey('backend', id);
      const current = appliedOf(state, key);
      return { op: 'put', entry: { key, value: { weight: command.weight } }, expectedModRevision: current?.modRevision ?? 0 };
    }
    case 'remove': {
      if (declared.has(command.id)) return overrideMutation(state, command.id, { removed: true });
      const key = addressKey('backend', command.id);
      const current = appliedOf(state, key);
      return current === undefined ? { op: 'none' } : { op: 'delete', key, expectedModRevision: current.modRevision };
    }
    case 'drain':
      return overrideMutation(state, command.id, { drained: true });
    case 'undrain':
      return overrideMutation(state, command.id, { drained: undefined });
    case 'weight':
      return overrideMutation(state, command.id, { weight: declared.get(command.id) === command.weight ? undefined : command.weight });
    default:
      throw new Error(`registry: unknown backend command ${JSON.stringify(command satisfies never)}`);
  }
}

/** The write for new routes: a put, or a delete when they equal config.yaml's (the file is in charge again). */
export function mutationForRoutes(state: RegistryState, config: Config, command: RoutesCommand): Mutation | NoMutation {
  const key: RegistryKey = { kind: 'routes', listener: command.listener };
  const current = appliedOf(state, key);
  const listener = config.listeners.find((l) => l.name === command.listener);
  if (listener !== undefined && sameRoutes(command.routes, listenerRoutes(listener))) {
    return current === undefined ? { op: 'none' } : { op: 'delete', key, expectedModRevision: current.modRevision };
  }
  const routes = command.routes.map((r) => ({ cluster: r.cluster, weight: r.weight }));
  return { op: 'put', entry: { key, value: { routes } }, expectedModRevision: current?.modRevision ?? 0 };
}

/** The write for a listener's new acl. */
export function mutationForAcl(state: RegistryState, listener: string, acl: AclConfig): Mutation {
  const key: RegistryKey = { kind: 'acl', listener };
  return { op: 'put', entry: { key, value: acl }, expectedModRevision: appliedOf(state, key)?.modRevision ?? 0 };
}
