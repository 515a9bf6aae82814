/**
 * The session table's key for a UDP client, looked up once per client datagram. An IPv4
 * client (the common case) gets a number, address × 65536 + port (below 2^48, exact in a
 * double), so the lookup builds no string: the `${address}:${port}` it replaces cost a
 * concatenation, its flattening and a fresh hash on every datagram. Any other address (IPv6,
 * IPv4-mapped IPv6) keeps the string form; a string and a number never collide in one Map.
 *
 * Injective: two different (address, port) pairs never share an id (distinct dotted quads
 * are distinct 32-bit numbers; anything that is not exactly a dotted quad of 0–255 octets
 * without leading zeros takes the string form, which carries the address verbatim).
 * Cost: one pass over the address's characters, no allocation for IPv4 beyond a number.
 */
import { parseIpv4 } from '../shared/ip-address.ts';

export type ClientId = number | string;

export function clientId(address: string, port: number): ClientId {
  const v4 = parseIpv4(address);
  return v4 < 0 ? `${address}:${port}` : v4 * 65536 + port;
}
