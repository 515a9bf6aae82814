/**
 * Binds a cluster's algorithm to the tables it needs for one snapshot version: the only place
 * that knows which pick function an algorithm uses. Built once per version in each worker
 * (never per accept); the connection plumbing only calls `pick`.
 *
 * Per-version state carried from the previous version's balancer of the same cluster:
 * - round_robin continues its rotation at the virtual time where it stopped;
 * - consistent_hash reuses its Maglev table while the cluster's backends, their weights and the
 *   table size are unchanged (a 65,537-entry table costs milliseconds to build; health and
 *   drains are applied at lookup, so they never rebuild it).
 */
import type { Algorithm, SnapshotBackend, SnapshotCluster } from '../../shared/snapshot/types.ts';
import { pickLeastConnections } from './least-connections.ts';
import type { LoadView } from './load.ts';
import { buildMaglevTable, DEFAULT_MAGLEV_SEED, pickMaglevEligible } from '../../shared/balancer/maglev.ts';
import { pickPowerOfTwo } from './power-of-two.ts';
import type { Random } from './random.ts';
import { createSmoothWeighted, pickSmoothWeighted, type SmoothWeightedState } from './smooth-weighted.ts';
import { buildAliasTable, pickWeightedRandom, type AliasTable } from './weighted-random.ts';

export interface Balancer {
  readonly algorithm: Algorithm;
  /**
   * Index into the cluster's eligible backends for a new connection, or -1 when there is
   * none. `clientHash` is the hash of the client's address (consistent_hash only).
   */
  pick(clientHash: number): number;
}

export interface BalancerEnv {
  /** The global assigned-connection row (shared/counters.ts `activeTotal`). */
  readonly activeTotal: Int32Array;
  readonly random: Random;
}

export function createBalancer(
  cluster: SnapshotCluster,
  eligible: readonly SnapshotBackend[],
  previous: Balancer | undefined,
  env: BalancerEnv,
): Balancer {
  const weights = Float64Array.from(eligible, (b) => b.weight);
  switch (cluster.algorithm) {
    case 'round_robin':
      return new RoundRobinBalancer(weights, previous instanceof RoundRobinBalancer ? previous.virtualTime : 0);
    case 'random':
      return new RandomBalancer(buildAliasTable(weights), env.random);
    case 'least_connections':
      return new LeastConnectionsBalancer(loadView(eligible, weights, env), env.random);
    case 'power_of_two':
      return new PowerOfTwoBalancer(loadView(eligible, weights, env), buildAliasTable(weights), env.random);
    case 'consistent_hash':
      return MaglevBalancer.create(cluster.backends, eligible, cluster.maglevTableSize, previous instanceof MaglevBalancer ? previous : undefined);
    default:
      throw new Error(`unknown algorithm ${String(cluster.algorithm satisfies never)}`);
  }
}

function loadView(eligible: readonly SnapshotBackend[], weights: Float64Array, env: BalancerEnv): LoadView {
  return { weights, slots: Int32Array.from(eligible, (b) => b.slot), active: env.activeTotal };
}

class RoundRobinBalancer implements Balancer {
  readonly algorithm = 'round_robin';
  private readonly state: SmoothWeightedState;

  constructor(weights: Float64Array, startAfter: number) {
    this.state = createSmoothWeighted(weights, startAfter);
  }

  get virtualTime(): number {
    return this.state.now;
  }

  pick(): number {
    return pickSmoothWeighted(this.state);
  }
}

class RandomBalancer implements Balancer {
  readonly algorithm = 'random';
  private readonly table: AliasTable;
  private readonly random: Random;

  constructor(table: AliasTable, random: Random) {
    this.table = table;
    this.random = random;
  }

  pick(): number {
    return pickWeightedRandom(this.table, this.random);
  }
}

class LeastConnectionsBalancer implements Balancer {
  readonly algorithm = 'least_connections';
  private readonly view: LoadView;
  private readonly random: Random;

  constructor(view: LoadView, random: Random) {
    this.view = view;
    this.random = random;
  }

  pick(): number {
    return pickLeastConnections(this.view, this.random);
  }
}

class PowerOfTwoBalancer implements Balancer {
  readonly algorithm = 'power_of_two';
  private readonly view: LoadView;
  private readonly table: AliasTable;
  private readonly random: Random;

  constructor(view: LoadView, table: AliasTable, random: Random) {
    this.view = view;
    this.table = table;
    this.random = random;
  }

  pick(): number {
    return pickPowerOfTwo(this.view, this.table, this.random);
  }
}

/**
 * consistent_hash: a Maglev table over every backend of the cluster in id order (any state;
 * a backend of weight 0 owns no entry), with eligibility applied at lookup. A health change
 * therefore costs a sort of the backends by id (O(n log n): 2.7 ms at 10,000), not a table
 * build, and moves only the keys of the backends whose eligibility changed; every instance with
 * the same backends, weights and table size builds the same table, whatever order the
 * backends were added in.
 */
export class MaglevBalancer implements Balancer {
  readonly algorithm = 'consistent_hash';
  /** Identifies what the table was built from: size, then each backend's id and weight in id order. */
  readonly identity: string;
  readonly table: Int32Array;
  /** Table backend (id order) → index in this version's eligible list, or -1. */
  private readonly target: Int32Array;
  /** The eligible backends' indices in id order: the fallback of a walk that found none. */
  private readonly fallback: Int32Array;

  private constructor(identity: string, table: Int32Array, target: Int32Array, fallback: Int32Array) {
    this.identity = identity;
    this.table = table;
    this.target = target;
    this.fallback = fallback;
  }

  static create(
    backends: readonly SnapshotBackend[],
    eligible: readonly SnapshotBackend[],
    size: number,
    previous: MaglevBalancer | undefined,
  ): MaglevBalancer {
    const members = [...backends].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const identity = `${size}|${members.map((b) => `${b.id}*${b.weight}`).join(',')}`;
    const table =
      previous?.identity === identity
        ? previous.table
        : buildMaglevTable(
            members.map((b) => ({ key: b.id, weight: b.weight })),
            size,
            DEFAULT_MAGLEV_SEED,
          );
    const eligibleIndex = new Map(eligible.map((b, index) => [b.slot, index]));
    const target = Int32Array.from(members, (b) => eligibleIndex.get(b.slot) ?? -1);
    return new MaglevBalancer(identity, table, target, target.filter((index) => index >= 0));
  }

  pick(clientHash: number): number {
    return pickMaglevEligible(this.table, this.target, this.fallback, clientHash);
  }
}
