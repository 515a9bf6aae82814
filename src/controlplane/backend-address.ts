/**
 * Whether an address may join a cluster through the admin API: its host name must resolve
 * (an unresolvable name would otherwise sit in rotation until enough connects failed), and
 * it must not be an endpoint the cluster already has under another spelling
 * (`localhost:9001` beside `127.0.0.1:9001` would double that endpoint's share).
 */
import { canonicalHost, parseHostPort } from '../shared/address.ts';
import type { Backend, Cluster } from './backend-registry.ts';
import { resolveHost, type Lookup } from './host-resolution.ts';

export type AddressRefusal = { readonly error: 'BAD_REQUEST' | 'CONFLICT'; readonly message: string };

export async function addressRefusal(cluster: Cluster, address: string, lookup?: Lookup): Promise<AddressRefusal | undefined> {
  const target = parseHostPort(address);
  if (target === undefined) return { error: 'BAD_REQUEST', message: `address: expected host:port, got "${address}"` };
  const resolved = await resolveHost(target.host, lookup);
  if (!resolved.ok) {
    return { error: 'BAD_REQUEST', message: `address: host "${target.host}" does not resolve (${resolved.reason}); a backend's host name must resolve when it is added` };
  }
  const wanted = new Set(resolved.addresses.map((ip) => `${ip}:${target.port}`));
  for (const backend of live(cluster)) {
    if (backend.port !== target.port) continue;
    const theirs = await resolveHost(backend.host, lookup);
    if (!theirs.ok) continue;
    const same = theirs.addresses.find((ip) => wanted.has(`${ip}:${target.port}`));
    if (same === undefined) continue;
    const spelled = canonicalHost(target.host) === canonicalHost(backend.host) ? '' : ` (both reach ${same}:${target.port})`;
    return { error: 'CONFLICT', message: `cluster ${cluster.name} already has this endpoint as ${backend.id}${spelled}` };
  }
  return undefined;
}

function live(cluster: Cluster): Backend[] {
  return [...cluster.backends.values()].filter((b) => b.health.state !== 'removed');
}
