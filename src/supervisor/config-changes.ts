/**
 * What a reload changes in listeners and clusters, computed from two validated configs
 * (pure: no I/O). Backends are the reload plan's (controlplane/reload-plan.ts): what they
 * become depends on the running set, not only on the two files.
 */
import type { Config } from '../shared/config/schema.ts';

export interface ConfigChanges {
  readonly listenersAdded: readonly string[];
  readonly listenersRemoved: readonly string[];
  /** Same name, any setting changed (address, cluster, ...). */
  readonly listenersChanged: readonly string[];
  readonly clustersAdded: readonly string[];
  readonly clustersRemoved: readonly string[];
}

function added<T>(before: ReadonlyMap<string, T>, after: ReadonlyMap<string, T>): string[] {
  return [...after.keys()].filter((key) => !before.has(key));
}

export function diffConfigs(before: Config, after: Config): ConfigChanges {
  const listenersBefore = new Map(before.listeners.map((l) => [l.name, l]));
  const listenersAfter = new Map(after.listeners.map((l) => [l.name, l]));
  const clustersBefore = new Map(before.clusters.map((c) => [c.name, c]));
  const clustersAfter = new Map(after.clusters.map((c) => [c.name, c]));
  return {
    listenersAdded: added(listenersBefore, listenersAfter),
    listenersRemoved: added(listenersAfter, listenersBefore),
    listenersChanged: after.listeners
      .filter((l) => {
        const old = listenersBefore.get(l.name);
        return old !== undefined && JSON.stringify(old) !== JSON.stringify(l);
      })
      .map((l) => l.name),
    clustersAdded: added(clustersBefore, clustersAfter),
    clustersRemoved: added(clustersAfter, clustersBefore),
  };
}

/**
 * Settings fixed for the life of a process (thread count, admin address and token, state
 * file, access log, capacity): a reload keeps the running values and names the keys it could not apply.
 */
export function restartOnlyChanges(running: Config, loaded: Config): { config: Config; ignored: string[] } {
  const ignored: string[] = [];
  if (running.workers !== loaded.workers) ignored.push('workers');
  if (running.admin.listen !== loaded.admin.listen) ignored.push('admin.listen');
  if (running.admin.token_env !== loaded.admin.token_env) ignored.push('admin.token_env');
  if (running.state_file !== loaded.state_file) ignored.push('state_file');
  // Workers get the access log settings (and its file descriptor) when they start.
  if (JSON.stringify(running.access_log) !== JSON.stringify(loaded.access_log)) ignored.push('access_log');
  // The shared buffers are sized by it once; what no longer fits is refused by the capacity check.
  if (running.capacity.backends !== loaded.capacity.backends) ignored.push('capacity.backends');
  const { state_file: _loadedStateFile, ...rest } = loaded;
  const config: Config = {
    ...rest,
    workers: running.workers,
    admin: running.admin,
    access_log: running.access_log,
    capacity: running.capacity,
    ...(running.state_file === undefined ? {} : { state_file: running.state_file }),
  };
  return { config, ignored };
}
