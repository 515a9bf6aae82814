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
export type ClientId = number | string;

export function clientId(address: string, port: number): ClientId {
  const v4 = ipv4Number(address);
  return v4 < 0 ? `${address}:${port}` : v4 * 65536 + port;
}

/** The 32-bit value of a canonical dotted quad (as the kernel reports it), else -1. */
export function ipv4Number(address: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
      continue;
    }
    const d = c - 48;
    // A leading zero would let "01.2.3.4" and "1.2.3.4" share an id.
    if (d < 0 || d > 9 || (digits === 1 && octet === 0)) return -1;
    octet = octet * 10 + d;
    digits++;
    if (octet > 255) return -1;
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + octet;
}
