/**
 * 32-bit string hashing for consistent hashing and session affinity: FNV-1a over the UTF-16
 * code units, finished with murmur3's fmix32 so that near-identical inputs (127.0.0.1,
 * 127.0.0.2, …) land far apart. Deterministic across threads, processes and restarts, which
 * is what lets every worker map a client to the same backend. Not a defence against
 * adversarial keys (no secret seed): an attacker who can pick source addresses can already
 * pick their backend by trying.
 *
 * Cost: one multiply per character plus five operations; no allocation.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const IPV4_MAPPED_PREFIX = '::ffff:';

export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash of `text[start..]`, varied by `seed` (different seeds give independent hashes). */
export function hashString(text: string, seed = 0, start = 0): number {
  let h = (FNV_OFFSET ^ seed) >>> 0;
  for (let i = start; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return fmix32(h);
}

/**
 * Hash of a client address as Node reports it (`socket.remoteAddress`). An IPv4 client seen
 * through a dual-stack listener (`::ffff:10.0.0.1`) hashes like the plain IPv4 address, so
 * one client keeps its backend whichever listener family accepted it.
 */
export function hashAddress(address: string, seed = 0): number {
  const start = address.startsWith(IPV4_MAPPED_PREFIX) && address.includes('.', IPV4_MAPPED_PREFIX.length) ? IPV4_MAPPED_PREFIX.length : 0;
  return hashString(address, seed, start);
}

/** Mixes a port into an address hash (for `hash_key: source_ip_port`), without building a string. */
export function mixPort(hash: number, port: number): number {
  return fmix32((hash ^ Math.imul(port + 1, 0x9e3779b1)) >>> 0);
}
