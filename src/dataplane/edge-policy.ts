/**
 * What a data-plane worker derives from one snapshot version for a listener's edge
 * settings: the compiled acl trie, the per-IP limit policy in ticks, and the SNI route
 * table resolved to cluster routes. Built once per version (never per accept); a listener
 * without any edge setting gets no policy, so its accept path is exactly the plain one.
 */
import { Acl } from '../shared/cidr.ts';
import { ratePolicy, type IpLimitPolicy } from '../shared/ip-limits.ts';
import type { SnapshotAcl, SnapshotListener } from '../shared/snapshot/types.ts';
import type { ClusterRoute } from './routing-table.ts';

export interface EdgePolicy {
  readonly acceptProxy: boolean;
  /** Undefined = everyone may connect. */
  readonly acl: Acl | undefined;
  /** The text the trie was compiled from, so the next version can reuse an unchanged trie. */
  readonly aclSource: SnapshotAcl | undefined;
  /** Undefined when neither per-IP limit is on. */
  readonly ipLimits: IpLimitPolicy | undefined;
  /** 0 = off. */
  readonly maxConnections: number;
  /** Undefined = the listener does not route by server name. */
  readonly sni: SniRoutes | undefined;
}

/**
 * Server name → cluster route: an exact name first, then the wildcard with the longest
 * suffix (`*.b.example.com` before `*.example.com`; a wildcard matches one or more labels,
 * never the bare suffix), then the listener's default.
 */
export class SniRoutes {
  private readonly exact = new Map<string, ClusterRoute | undefined>();
  /** Keyed by the suffix after `*.`. */
  private readonly wildcard = new Map<string, ClusterRoute | undefined>();
  private readonly fallback: ClusterRoute | undefined;

  constructor(routes: readonly { serverName: string; route: ClusterRoute | undefined }[], fallback: ClusterRoute | undefined) {
    for (const { serverName, route } of routes) {
      if (serverName.startsWith('*.')) this.wildcard.set(serverName.slice(2), route);
      else this.exact.set(serverName, route);
    }
    this.fallback = fallback;
  }

  /** The route for a (lower-case) server name, or for a client that sent none. */
  route(serverName: string | undefined): ClusterRoute | undefined {
    if (serverName === undefined) return this.fallback;
    if (this.exact.has(serverName)) return this.exact.get(serverName);
    for (let dot = serverName.indexOf('.'); dot !== -1; dot = serverName.indexOf('.', dot + 1)) {
      const suffix = serverName.slice(dot + 1);
      if (this.wildcard.has(suffix)) return this.wildcard.get(suffix);
    }
    return this.fallback;
  }
}

export function buildEdgePolicy(
  listener: SnapshotListener,
  clusters: ReadonlyMap<string, ClusterRoute>,
  previous: EdgePolicy | undefined,
): EdgePolicy | undefined {
  const { acceptProxy = false, limits, acl, sniRoutes } = listener;
  const aclOn = acl !== undefined && (acl.allow.length > 0 || acl.deny.length > 0);
  if (!acceptProxy && limits === undefined && !aclOn && sniRoutes === undefined) return undefined;
  const perIp = limits !== undefined && (limits.perIpConnections > 0 || limits.perIpRate > 0);
  const fallback = listener.cluster === null ? undefined : clusters.get(listener.cluster);
  return {
    acceptProxy,
    acl: aclOn ? reuseOrCompile(acl, previous) : undefined,
    aclSource: aclOn ? acl : undefined,
    ipLimits: perIp
      ? {
          perIpConnections: limits.perIpConnections,
          ...(limits.perIpRate > 0 ? ratePolicy(limits.perIpRate, limits.burst) : { intervalTicks: 0, toleranceTicks: 0 }),
        }
      : undefined,
    maxConnections: limits?.maxConnections ?? 0,
    sni:
      sniRoutes === undefined
        ? undefined
        : new SniRoutes(
            sniRoutes.map((r) => ({ serverName: r.serverName, route: clusters.get(r.cluster) })),
            fallback,
          ),
  };
}

/** Compiling 10,000 blocks takes milliseconds; most versions change backends, not acls. */
function reuseOrCompile(acl: SnapshotAcl, previous: EdgePolicy | undefined): Acl {
  const before = previous?.aclSource;
  if (previous?.acl !== undefined && before !== undefined && sameList(before.allow, acl.allow) && sameList(before.deny, acl.deny)) {
    return previous.acl;
  }
  return Acl.fromText(acl.allow, acl.deny);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}
