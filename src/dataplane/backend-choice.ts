/**
 * Which backend a new connection (TCP) or session (UDP) goes to, and the reservation of its
 * place under that backend's max_connections. One home for the rule, so the two protocols
 * cannot drift:
 * - the client's remembered backend while it is eligible (sticky), else the cluster's
 *   balancer (consistent_hash hashes the client's address, and its port with source_ip_port);
 * - from there a walk over the eligible backends that reserves the first one with room; one
 *   walk tries each eligible backend at most once, and can be resumed after a failed connect;
 * - a backend that failed a connection's attempt is passed over by that connection's later
 *   walks (after it waited in the queue): a refusing backend always has room, so otherwise a
 *   queued client would retry it as fast as it refuses until the queue timeout;
 * - the backend chosen is remembered for the client (sticky) as soon as it is chosen, so the
 *   client's next connections, in any worker, follow it even while this one still connects.
 *   An entry already naming the backend is rewritten only to move its expiry on, at most once
 *   a second: few writes, so other workers rarely find it mid-write.
 *
 * Cost: one balancer pick, at most one affinity lookup and write, a walk that ends at the
 * first backend with room (O(eligible) only when backends are full); the walk state is one
 * object per connection, reused across its attempts and retries; no allocation per pick.
 */
import type { WorkerCounters } from '../shared/counters.ts';
import type { SnapshotBackend } from '../shared/snapshot/types.ts';
import { AFFINITY_SEED } from '../shared/balancer/affinity.ts';
import { hashAddress, mixPort } from '../shared/balancer/hash.ts';
import type { ClusterRoute } from './routing-table.ts';

/** The reservation a walk holds on behalf of its connection (counters.reserve/release). */
export interface Reserver {
  reserve(slot: number, limit: number): boolean;
}

export class BackendWalk {
  /** Hash of the client's address (affinity key, part one; consistent_hash on source_ip). */
  private ipHash = 0;
  /** An independent second hash of the address (affinity key, part two); 0 = unknown client. */
  private stickyHash = 0;
  /** The client's port (consistent_hash on source_ip_port mixes it into the address hash). */
  private port = 0;
  private hashed = false;
  /** The client's remembered backend slot and its expiry (table seconds), or -1. */
  private stickySlot = -1;
  private stickyExpires = 0;
  /** Where the walk started, and how far it got. */
  private firstIndex = -1;
  private visited = 0;
  /** Some backend of the walk was at its limit (the caller may queue). */
  sawFull = false;
  /** Slots of the backends that failed this connection's attempts; allocated at the first failure. */
  private failedSlots: number[] | undefined;

  /**
   * The client's address and port, once: affinity is by address (a client's port changes with
   * every connection); source_ip_port mixes the port in. Undefined address = unknown client
   * (no affinity, hash 0).
   */
  setClient(address: string | undefined, port: number): void {
    this.hashed = true;
    if (address === undefined) return;
    this.ipHash = hashAddress(address);
    this.stickyHash = hashAddress(address, AFFINITY_SEED) || 1;
    this.port = port;
  }

  /** Forget the client and the walk (a walk object reused for another client). */
  clear(): void {
    this.ipHash = 0;
    this.stickyHash = 0;
    this.port = 0;
    this.hashed = false;
    this.stickySlot = -1;
    this.stickyExpires = 0;
    this.firstIndex = -1;
    this.visited = 0;
    this.sawFull = false;
    this.failedSlots = undefined;
  }

  /** The attempt on `slot` failed: later walks for this connection pass the backend over. */
  failed(slot: number): void {
    (this.failedSlots ??= []).push(slot);
  }

  /**
   * Start a walk at the preferred backend of `route`. `avoidSlot` (UDP: the backend that just
   * refused this client) is passed over when there is another backend; -1 = none. `preferred`
   * (UDP: the backend of a session handed over by the previous process) replaces the sticky
   * and balancer picks; -1 = none.
   */
  begin(route: ClusterRoute, nowMs: number, avoidSlot = -1, preferred = -1): void {
    this.visited = 0;
    this.sawFull = false;
    const n = route.eligible.length;
    if (n === 0) {
      this.firstIndex = -1;
      return;
    }
    let first = Math.max(0, preferred >= 0 && preferred < n ? preferred : this.preferredIndex(route, nowMs));
    if (n > 1 && route.eligible[first]?.slot === avoidSlot) first = (first + 1) % n;
    this.firstIndex = first;
  }

  /** Reserve the next backend of the walk with room; undefined when the walk is over. */
  next(route: ClusterRoute, counters: Reserver): SnapshotBackend | undefined {
    const { eligible, limits } = route;
    const n = eligible.length;
    while (this.visited < n) {
      const index = (this.firstIndex + this.visited) % n;
      this.visited++;
      const target = eligible[index];
      if (target === undefined || this.failedSlots?.includes(target.slot) === true) continue;
      if (counters.reserve(target.slot, limits[index] ?? 0)) return target;
      this.sawFull = true;
    }
    return undefined;
  }

  /** Sticky: remember `target` for this client (a no-op without affinity or a known client). */
  remember(route: ClusterRoute, target: SnapshotBackend, nowMs: number): void {
    const sticky = route.sticky;
    if (sticky === undefined || this.stickyHash === 0) return;
    const now = sticky.table.now(nowMs);
    const expires = now + sticky.ttlSeconds;
    if (target.slot === this.stickySlot && this.stickyExpires >= expires) return;
    sticky.table.remember(this.ipHash, this.stickyHash, target.slot, expires, now);
    this.stickySlot = target.slot;
    this.stickyExpires = expires;
  }

  private preferredIndex(route: ClusterRoute, nowMs: number): number {
    if (route.hashKey === undefined && route.sticky === undefined) return route.balancer.pick(0);
    if (!this.hashed) return route.balancer.pick(0);
    const sticky = route.sticky;
    if (sticky !== undefined && this.stickyHash !== 0) {
      const slot = sticky.table.lookup(this.ipHash, this.stickyHash, sticky.table.now(nowMs));
      const index = slot < 0 ? undefined : sticky.indexBySlot.get(slot);
      if (index !== undefined) {
        this.stickySlot = slot;
        this.stickyExpires = sticky.table.foundExpires;
        return index;
      }
    }
    const hash = route.hashKey === 'source_ip_port' && this.stickyHash !== 0 ? mixPort(this.ipHash, this.port) : this.ipHash;
    return route.balancer.pick(hash);
  }
}

/** Reused by every one-shot choice: a choice completes synchronously, so one object serves all. */
const scratchWalk = new BackendWalk();

/**
 * The reserved backend of a new UDP session (or any one-shot choice), or undefined when every
 * eligible backend is at its limit (or none is eligible): a datagram does not wait for room,
 * the caller drops and counts it. `avoidSlot`: a backend that just refused this client (ICMP
 * port unreachable), passed over when there is another; `preferred`: the eligible index of a
 * session handed over by the previous process (udp-handover.ts).
 */
export function reserveSessionBackend(
  route: ClusterRoute,
  address: string,
  port: number,
  avoidSlot: number,
  counters: WorkerCounters,
  nowMs: number,
  preferred = -1,
): SnapshotBackend | undefined {
  const walk = scratchWalk;
  walk.clear();
  if (route.hashKey !== undefined || route.sticky !== undefined) walk.setClient(address, port);
  walk.begin(route, nowMs, avoidSlot, preferred);
  const backend = walk.next(route, counters);
  if (backend !== undefined) walk.remember(route, backend, nowMs);
  return backend;
}
