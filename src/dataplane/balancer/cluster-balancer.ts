/**
 * Binds a cluster's algorithm to the tables it needs for one snapshot version: the only place
 * that knows which pick function an algorithm uses. Built once per version in each worker
 * (never per accept); the connection plumbing only calls `pick`.
 *
 * Per-version state carried from the previous version's balancer of the same cluster:
 * - round_robin continues its rotation at the virtual time where it stopped;
 * - consistent_hash reuses its Maglev table when the eligible set and table size are unchanged
 *   (a 65,537-entry table costs a few milliseconds to build; most versions change other things).
 */
import type { Algorithm, SnapshotBackend, SnapshotCluster } from '../../shared/snapshot/types.ts';
import { pickLeastConnections } from './least-connections.ts';
import type { LoadView } from './load.ts';
import { buildMaglevTable, pickMaglev } from '../../shared/balancer/maglev.ts';
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
      return MaglevBalancer.create(eligible, cluster.maglevTableSize, previous instanceof MaglevBalancer ? previous : undefined);
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

export class MaglevBalancer implements Balancer {
  readonly algorithm = 'consistent_hash';
  /** Identifies the eligible list (order, addresses, weights) and size the table was built for. */
  readonly identity: string;
  readonly table: Int32Array;

  private constructor(identity: string, table: Int32Array) {
    this.identity = identity;
    this.table = table;
  }

  static create(eligible: readonly SnapshotBackend[], size: number, previous: MaglevBalancer | undefined): MaglevBalancer {
    const identity = `${size}|${eligible.map((b) => `${b.address}*${b.weight}`).join(',')}`;
    if (previous?.identity === identity) return previous;
    const table = buildMaglevTable(
      eligible.map((b) => ({ key: b.address, weight: b.weight })),
      size,
    );
    return new MaglevBalancer(identity, table);
  }

  pick(clientHash: number): number {
    return pickMaglev(this.table, clientHash);
  }
}
