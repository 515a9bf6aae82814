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
  /** With acceptProxy: the peers allowed to send a PROXY header; undefined = every peer. */
  readonly proxyTrusted: Acl | undefined;
  /** The blocks `proxyTrusted` was compiled from, so the next version can reuse it. */
  readonly proxyTrustedSource: readonly string[] | undefined;
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
 * never the bare suffix). No match (or no name) is the caller's to send to the listener's
 * default routes.
 */
export class SniRoutes {
  private readonly exact = new Map<string, ClusterRoute>();
  /** Keyed by the suffix after `*.`. */
  private readonly wildcard = new Map<string, ClusterRoute>();

  /** A route whose cluster is not in the snapshot is left out (config checks make that rare). */
  constructor(routes: readonly { serverName: string; route: ClusterRoute | undefined }[]) {
    for (const { serverName, route } of routes) {
      if (route === undefined) continue;
      if (serverName.startsWith('*.')) this.wildcard.set(serverName.slice(2), route);
      else this.exact.set(serverName, route);
    }
  }

  /** The route for a (lower-case) server name; undefined when none matches or no name was sent. */
  match(serverName: string | undefined): ClusterRoute | undefined {
    if (serverName === undefined) return undefined;
    const exact = this.exact.get(serverName);
    if (exact !== undefined) return exact;
    for (let dot = serverName.indexOf('.'); dot !== -1; dot = serverName.indexOf('.', dot + 1)) {
      const wildcard = this.wildcard.get(serverName.slice(dot + 1));
      if (wildcard !== undefined) return wildcard;
    }
    return undefined;
  }
}

export function buildEdgePolicy(
  listener: SnapshotListener,
  clusters: ReadonlyMap<string, ClusterRoute>,
  previous: EdgePolicy | undefined,
): EdgePolicy | undefined {
  const { acceptProxy = false, proxyTrusted, limits, acl, sniRoutes } = listener;
  const aclOn = acl !== undefined && (acl.allow.length > 0 || acl.deny.length > 0);
  if (!acceptProxy && limits === undefined && !aclOn && sniRoutes === undefined) return undefined;
  const perIp = limits !== undefined && (limits.perIpConnections > 0 || limits.perIpRate > 0);
  const trusted = acceptProxy ? proxyTrusted : undefined;
  return {
    acceptProxy,
    proxyTrusted: trusted === undefined ? undefined : reuseOrCompileTrusted(trusted, previous),
    proxyTrustedSource: trusted,
    acl: aclOn ? reuseOrCompile(acl, previous) : undefined,
    aclSource: aclOn ? acl : undefined,
    ipLimits: perIp
      ? {
          perIpConnections: limits.perIpConnections,
          ...(limits.perIpRate > 0 ? ratePolicy(limits.perIpRate, limits.burst) : { intervalTicks: 0, toleranceTicks: 0 }),
        }
      : undefined,
    maxConnections: limits?.maxConnections ?? 0,
    sni: sniRoutes === undefined ? undefined : new SniRoutes(sniRoutes.map((r) => ({ serverName: r.serverName, route: clusters.get(r.cluster) }))),
  };
}

/**
 * Only the listed peers are trusted. An empty list (the config refuses one) trusts nobody
 * rather than everybody, which is what an empty allow list would mean to an Acl.
 */
function reuseOrCompileTrusted(trusted: readonly string[], previous: EdgePolicy | undefined): Acl {
  const before = previous?.proxyTrustedSource;
  if (previous?.proxyTrusted !== undefined && before !== undefined && sameList(before, trusted)) return previous.proxyTrusted;
  return trusted.length === 0 ? Acl.fromText([], NOBODY) : Acl.fromText(trusted, []);
}

const NOBODY = ['0.0.0.0/0', '::/0'];

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
