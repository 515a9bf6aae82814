/**
 * A listener's entry in the snapshot, from its config: the clusters it routes to (weighted)
 * and its edge settings (accept_proxy, limits, acl, sni_routes). Pure.
 */
import type { AclConfig, ListenerConfig } from '../shared/config/schema.ts';
import { listenerRoutes } from '../shared/config/schema.ts';
import type { SnapshotAcl, SnapshotListener } from '../shared/snapshot/types.ts';

/**
 * `acl` and `routes` replace the file's (set through the admin API); undefined keeps the
 * file's.
 */
export function snapshotListener(
  config: ListenerConfig,
  acl?: AclConfig,
  routeOverride?: readonly { readonly cluster: string; readonly weight: number }[],
): SnapshotListener {
  const effectiveAcl = acl ?? config.acl;
  const limits = config.limits;
  const routes = (routeOverride ?? listenerRoutes(config)).map((r) => ({ cluster: r.cluster, weight: r.weight }));
  return {
    name: config.name,
    cluster: routes[0]?.cluster ?? null,
    routes,
    ...acceptProxy(config.accept_proxy),
    ...(limits === undefined
      ? {}
      : {
          limits: {
            perIpConnections: limits.per_ip_connections ?? 0,
            perIpRate: limits.per_ip_rate ?? 0,
            burst: limits.burst ?? 0,
            maxConnections: limits.max_connections ?? 0,
          },
        }),
    ...(effectiveAcl === undefined || isEmptyAcl(effectiveAcl) ? {} : { acl: snapshotAcl(effectiveAcl) }),
    ...(config.sni_routes === undefined
      ? {}
      : { sniRoutes: config.sni_routes.map((route) => ({ serverName: route.server_name, cluster: route.cluster })) }),
  };
}

function acceptProxy(setting: ListenerConfig['accept_proxy']): Pick<SnapshotListener, 'acceptProxy' | 'proxyTrusted'> {
  if (setting === undefined || setting === false) return {};
  return setting === true ? { acceptProxy: true } : { acceptProxy: true, proxyTrusted: [...setting.trusted] };
}

function snapshotAcl(acl: AclConfig): SnapshotAcl {
  return { allow: [...acl.allow], deny: [...acl.deny] };
}

function isEmptyAcl(acl: AclConfig): boolean {
  return acl.allow.length === 0 && acl.deny.length === 0;
}

/** Whether two acls hold the same blocks in the same order (both canonical text). */
export function sameAcl(a: AclConfig | undefined, b: AclConfig | undefined): boolean {
  const left = a ?? { allow: [], deny: [] };
  const right = b ?? { allow: [], deny: [] };
  return sameList(left.allow, right.allow) && sameList(left.deny, right.deny);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}
