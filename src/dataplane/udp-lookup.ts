/**
 * Name resolution for the UDP data path's sockets.
 */
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import { isIP, isIPv6 } from 'node:net';

/**
 * dgram resolves every address it sends to or connects to, even an IP literal, through an
 * asynchronous lookup. Answering literals synchronously saves a tick per reply and makes
 * connect() complete at once, so the first datagram can go out in the same turn.
 */
export function literalLookup(
  hostname: string,
  options: LookupOneOptions,
  callback: (error: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const family = isIP(hostname);
  if (family !== 0) {
    callback(null, hostname, family);
    return;
  }
  dnsLookup(hostname, options, callback);
}

export function socketType(host: string): 'udp4' | 'udp6' {
  return isIPv6(host) ? 'udp6' : 'udp4';
}
