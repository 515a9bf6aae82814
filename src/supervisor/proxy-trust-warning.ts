/**
 * `accept_proxy: true` believes a PROXY header from any peer, and the header decides who
 * the acl and the per-IP limits see. That is safe only where no one but the balancers in
 * front can reach the listener; on any other address it lets a client pick the address it
 * is judged by. Pure: the supervisor logs what this returns, at start and on reload.
 */
import { isLoopbackHost, isWildcardHost, parseHostPort } from '../shared/address.ts';
import type { ListenerConfig } from '../shared/config/schema.ts';

export interface ListenerWarning {
  readonly listener: string;
  readonly message: string;
}

export function proxyTrustWarnings(listeners: readonly ListenerConfig[]): ListenerWarning[] {
  const warnings: ListenerWarning[] = [];
  for (const listener of listeners) {
    if (listener.accept_proxy !== true) continue;
    const host = parseHostPort(listener.listen)?.host;
    if (host === undefined || isLoopbackHost(host)) continue;
    const where = isWildcardHost(host) ? 'every interface' : host;
    warnings.push({
      listener: listener.name,
      message:
        `accept_proxy: true on ${where} trusts a PROXY header from any peer, so a client can name the address the acl and limits judge; ` +
        'list the balancers in front with accept_proxy: {trusted: [CIDR, ...]}',
    });
  }
  return warnings;
}
