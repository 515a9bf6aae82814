/**
 * Per-accept cost against cluster size: the same Sluice configuration with 1 backend and
 * with 10,000, both measured with new connections (every request a fresh accept and pick).
 * Round robin is O(1) per pick, so anything that grows with the cluster on the accept path
 * (a copy, a scan, a filter per accept) shows up here as fewer connections/s and more CPU
 * per connection.
 *
 * The 10,000 backends are distinct loopback addresses (127.1.x.y) on the HTTP backend's
 * port; the backend nginx listens on 0.0.0.0, so every one of them answers.
 */
import { freePorts } from '../lib/procs.ts';
import type { TargetSpec } from '../peers/catalog.ts';
import { startSluiceTarget } from '../peers/sluice.ts';

const HOSTS_PER_OCTET = 250;

/** `count` distinct loopback addresses on `port`, from 127.1.0.1 up (never .0 or .255). */
export function loopbackBackends(count: number, port: number): string[] {
  return Array.from(
    { length: count },
    (_, i) => `127.1.${Math.floor(i / HOSTS_PER_OCTET)}.${(i % HOSTS_PER_OCTET) + 1}:${port}`,
  );
}

export function manyBackendsSpec(workers: number, count: number): TargetSpec {
  const label = `${workers}w ${count} backends`;
  return {
    name: `sluice ${label}`,
    kind: 'sluice',
    workers,
    start: async ({ group, dir, backends }) => {
      const [adminPort = 0, httpPort = 0, iperfPort = 0] = await freePorts(3);
      return startSluiceTarget(group, dir, {
        label,
        workers,
        adminPort,
        httpPort,
        iperfPort,
        httpBackends: loopbackBackends(count, backends.httpPort),
        iperfBackend: `127.0.0.1:${backends.iperfPort}`,
      });
    },
  };
}
