/**
 * The backend of a new UDP session, by the rules of a TCP connection's first attempt: the
 * client's remembered backend while it is eligible (sticky), else the cluster's balancer
 * (consistent_hash hashes the client's address, and its port with source_ip_port); from
 * there, the first eligible backend with room under its max_connections, whose place is
 * reserved for the session's lifetime. A `preferred` index (a session handed over by the
 * previous process, udp-handover.ts) replaces the sticky and balancer picks. A backend that just refused this client (ICMP port
 * unreachable) is passed over when there is another. There is no queue: a datagram does not
 * wait for room, it is dropped and counted by the caller.
 *
 * Cost: one balancer pick, at most one affinity lookup and write, and a walk that ends at the
 * first backend with room (O(eligible) only when backends are full); no allocation.
 */
import type { WorkerCounters } from '../shared/counters.ts';
import type { SnapshotBackend } from '../shared/snapshot/types.ts';
import { AFFINITY_SEED } from '../shared/balancer/affinity.ts';
import { hashAddress, mixPort } from '../shared/balancer/hash.ts';
import type { ClusterRoute } from './routing-table.ts';

/** The reserved backend, or undefined when every eligible backend is at its limit (or none is eligible). */
export function reserveSessionBackend(
  route: ClusterRoute,
  address: string,
  port: number,
  avoidSlot: number,
  counters: WorkerCounters,
  nowMs: number,
  preferred = -1,
): SnapshotBackend | undefined {
  const { eligible, limits, sticky } = route;
  const n = eligible.length;
  if (n === 0) return undefined;
  let ipHash = 0;
  let stickyHash = 0;
  let first = preferred;
  if (first >= 0) {
    if (sticky !== undefined) {
      ipHash = hashAddress(address);
      stickyHash = hashAddress(address, AFFINITY_SEED) || 1;
    }
  } else if (route.hashKey !== undefined || sticky !== undefined) {
    ipHash = hashAddress(address);
    stickyHash = hashAddress(address, AFFINITY_SEED) || 1;
    if (sticky !== undefined) {
      const slot = sticky.table.lookup(ipHash, stickyHash, sticky.table.now(nowMs));
      first = slot < 0 ? -1 : (sticky.indexBySlot.get(slot) ?? -1);
    }
    if (first < 0) first = route.balancer.pick(route.hashKey === 'source_ip_port' ? mixPort(ipHash, port) : ipHash);
  } else {
    first = route.balancer.pick(0);
  }
  if (first < 0) first = 0;
  if (n > 1 && eligible[first]?.slot === avoidSlot) first = (first + 1) % n;
  for (let visited = 0; visited < n; visited++) {
    const index = (first + visited) % n;
    const backend = eligible[index];
    if (backend === undefined || !counters.reserve(backend.slot, limits[index] ?? 0)) continue;
    if (sticky !== undefined) {
      const now = sticky.table.now(nowMs);
      sticky.table.remember(ipHash, stickyHash, backend.slot, now + sticky.ttlSeconds, now);
    }
    return backend;
  }
  return undefined;
}
