/**
 * Operators' changes to a listener's routes (PATCH /listeners/:name/routes), applied by the
 * control plane like backend commands: checked first and refused whole, recorded in the
 * runtime state (the state file, when there is one, is written before anything is
 * published), then published; the answer names the snapshot version that holds the routes.
 * Open connections are not touched: only new connections follow the new split.
 */
import type { Config } from '../shared/config/schema.ts';
import type { RoutesCommand, RoutesCommandResult } from '../shared/messages.ts';
import type { BackendRegistry } from './backend-registry.ts';
import { recordRoutes, type RuntimeState } from './runtime-state.ts';

/** What a routes command needs of the control plane. */
export interface RoutesCore {
  readonly registry: BackendRegistry;
  readonly config: () => Config;
  readonly runtime: () => RuntimeState;
  /** Persists the runtime state (state file) and keeps it; throws when it cannot be written. */
  readonly saveRuntime: (state: RuntimeState) => Promise<void>;
  /** Publishes if anything changed; the version that holds the current state. */
  readonly publish: () => number;
}

const MAX_WEIGHT = 10_000;

type Refusal = Extract<RoutesCommandResult, { ok: false }>;

function refuse(error: Refusal['error'], message: string): Refusal {
  return { ok: false, error, message };
}

export async function runRoutesCommand(core: RoutesCore, command: RoutesCommand): Promise<RoutesCommandResult> {
  const config = core.config();
  const problem = checkRoutesCommand(config, command);
  if (problem !== undefined) return problem;

  const before = core.runtime();
  const after = recordRoutes(before, command.listener, command.routes, config);
  try {
    await core.saveRuntime(after);
  } catch (error) {
    return refuse('UNAVAILABLE', `the state file cannot be written, so the change was not made: ${(error as Error).message}`);
  }
  core.registry.setRouteOverrides(after.routes);
  const version = core.publish();
  return { ok: true, version, listener: command.listener, routes: core.registry.listenerRoutes(command.listener) ?? [] };
}

/** Why `command` cannot be applied under `config`, or undefined (run before a registry write too). */
export function checkRoutesCommand(config: Config, command: RoutesCommand): Refusal | undefined {
  const listener = config.listeners.find((l) => l.name === command.listener);
  if (listener === undefined) {
    return refuse('NOT_FOUND', `no listener "${command.listener}"; known: ${config.listeners.map((l) => l.name).join(', ')}`);
  }
  const problem =
    routesProblem(command.routes, new Set(config.clusters.map((c) => c.name))) ??
    (listener.protocol === 'udp' ? udpRoutesProblem(command.routes, config) : undefined);
  return problem === undefined ? undefined : refuse(problem.error, problem.message);
}

/** What makes a set of routes unusable, checked here too: commands may come from anything. */
function routesProblem(routes: RoutesCommand['routes'], clusters: ReadonlySet<string>): Refusal | undefined {
  if (routes.length === 0) return refuse('BAD_REQUEST', 'routes: expected at least one route');
  const seen = new Set<string>();
  for (const [i, route] of routes.entries()) {
    if (!clusters.has(route.cluster)) {
      return refuse('NOT_FOUND', `routes.${i}.cluster: unknown cluster "${route.cluster}"; known: ${[...clusters].join(', ')}`);
    }
    if (seen.has(route.cluster)) return refuse('BAD_REQUEST', `routes.${i}.cluster: cluster "${route.cluster}" is routed twice`);
    seen.add(route.cluster);
    if (!Number.isInteger(route.weight) || route.weight < 0 || route.weight > MAX_WEIGHT) {
      return refuse('BAD_REQUEST', `routes.${i}.weight: expected an integer from 0 to ${MAX_WEIGHT}`);
    }
  }
  if (routes.every((r) => r.weight === 0)) return refuse('BAD_REQUEST', 'routes: at least one route needs a weight above 0');
  return undefined;
}

/** A UDP session sends no PROXY header: as in config.yaml, no send_proxy cluster for a UDP listener. */
function udpRoutesProblem(routes: RoutesCommand['routes'], config: Config): Refusal | undefined {
  for (const [i, route] of routes.entries()) {
    const cluster = config.clusters.find((c) => c.name === route.cluster);
    if (cluster?.send_proxy !== undefined) {
      return refuse('BAD_REQUEST', `routes.${i}.cluster: cluster "${route.cluster}" has send_proxy, which a udp listener cannot send`);
    }
  }
  return undefined;
}
