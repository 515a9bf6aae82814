/**
 * Whether a request to the admin API comes from a browser acting for another site's page.
 * Whoever can reach the API without a token may drive it, and any page open in the
 * operator's browser can reach 127.0.0.1 too, in two ways:
 *
 * - cross-site requests: `fetch('http://127.0.0.1:9090/drain', {method: 'POST', mode: 'no-cors'})`
 *   is sent without any CORS approval (only its answer stays hidden). The browser marks it
 *   with `Origin` and `Sec-Fetch-Site`.
 * - DNS rebinding: a page at evil.example:9090 whose name then resolves to 127.0.0.1 is
 *   same-origin with itself, so the browser lets it read the answers too. Only the `Host`
 *   header (`evil.example:9090`) gives it away.
 *
 * Pure: the caller passes the headers and the names that mean this server. Clients other
 * than browsers send neither `Origin` nor `Sec-Fetch-*`, and a missing `Host` (HTTP/1.0)
 * cannot come from a browser, so they pass.
 */
import { isIPv6 } from 'node:net';
import { canonicalHost, isLoopbackHost } from '../../shared/address.ts';

export interface CrossSiteRequest {
  readonly method: string;
  readonly host: string | undefined;
  readonly origin: string | undefined;
  readonly fetchSite: string | undefined;
  readonly fetchMode: string | undefined;
  readonly fetchDest: string | undefined;
}

export interface CrossSitePolicy {
  /**
   * False with a token: a rebinding page cannot present the token (the dashboard keeps it per
   * origin), and a token lets the API sit behind names and proxies this host cannot know.
   */
  readonly checkHost: boolean;
  /** Canonical hosts (no port) that name this server besides loopback ones: admin.listen's, this host's addresses and name. */
  readonly localHosts: { has(host: string): boolean };
}

export type CrossSiteHeader = 'Host' | 'Origin' | 'Sec-Fetch-Site';

export interface CrossSiteProblem {
  readonly header: CrossSiteHeader;
  readonly message: string;
}

const FOR_ANOTHER_SITE = 'the admin API refuses requests a browser sends for another site';
const PORT = /^\d{1,5}$/;

/** The first reason to refuse `request`, or undefined to serve it. */
export function crossSiteProblem(request: CrossSiteRequest, policy: CrossSitePolicy): CrossSiteProblem | undefined {
  const host = request.host === undefined ? undefined : parseHostHeader(request.host);
  if (policy.checkHost && request.host !== undefined && (host === undefined || !isLocalHost(host.host, policy))) {
    return {
      header: 'Host',
      message: `Host "${request.host}" does not name this server: without an admin token only localhost, loopback and this host's addresses and admin.listen are accepted (a foreign name is how DNS rebinding reaches the API)`,
    };
  }
  const originProblem = request.origin === undefined ? undefined : checkOrigin(request.origin, request.host, host);
  if (originProblem !== undefined) return { header: 'Origin', message: originProblem };
  const site = request.fetchSite?.toLowerCase();
  const vouched = site === 'cross-site' || (site === 'same-site' && request.origin === undefined);
  if (vouched && !isSafeNavigation(request)) {
    return { header: 'Sec-Fetch-Site', message: `Sec-Fetch-Site "${site}": ${FOR_ANOTHER_SITE}'s page` };
  }
  return undefined;
}

/**
 * A link followed to the dashboard or a JSON page: a top-level GET changes nothing, and what it
 * shows goes to the operator's own tab, never to the page that linked here.
 */
function isSafeNavigation(request: CrossSiteRequest): boolean {
  const safeMethod = request.method === 'GET' || request.method === 'HEAD';
  return safeMethod && request.fetchMode?.toLowerCase() === 'navigate' && request.fetchDest?.toLowerCase() === 'document';
}

/** An `Origin` is accepted only when it is the very server the request addresses (the `Host`). */
function checkOrigin(origin: string, hostHeader: string | undefined, host: HostHeader | undefined): string | undefined {
  if (origin === 'null') return `Origin "null" (a sandboxed page, a local file or a redirect): ${FOR_ANOTHER_SITE}`;
  const parsed = parseOrigin(origin);
  if (parsed === undefined) return `Origin "${origin}" is not an http(s) origin: ${FOR_ANOTHER_SITE}`;
  const defaultPort = parsed.scheme === 'https' ? '443' : '80';
  const samePort = (host?.port ?? defaultPort) === (parsed.port ?? defaultPort);
  if (host !== undefined && host.host === parsed.host && samePort) return undefined;
  return `Origin "${origin}" is not this server (${hostHeader ?? 'no Host header'}): ${FOR_ANOTHER_SITE}`;
}

interface HostHeader {
  /** Canonical: lower case, IPv6 compressed and without brackets, no trailing dot. */
  readonly host: string;
  readonly port: string | undefined;
}

/** `name`, `name:port`, `1.2.3.4:port`, `[v6]:port`; undefined for anything else. */
export function parseHostHeader(value: string): HostHeader | undefined {
  let host: string;
  let port: string | undefined;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0) return undefined;
    host = value.slice(1, close);
    const rest = value.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) return undefined;
    port = rest === '' ? undefined : rest.slice(1);
    if (!isIPv6(host)) return undefined;
  } else {
    const colon = value.indexOf(':');
    host = colon < 0 ? value : value.slice(0, colon);
    port = colon < 0 ? undefined : value.slice(colon + 1);
    if (!/^[A-Za-z0-9_.-]+$/.test(host)) return undefined;
  }
  if (port !== undefined && !PORT.test(port)) return undefined;
  return { host: canonicalName(host), port };
}

function parseOrigin(origin: string): { scheme: string; host: string; port: string | undefined } | undefined {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  const bracketed = url.hostname.startsWith('[');
  return { scheme: url.protocol.slice(0, -1), host: canonicalName(bracketed ? url.hostname.slice(1, -1) : url.hostname), port: url.port === '' ? undefined : url.port };
}

function canonicalName(host: string): string {
  return canonicalHost(host.endsWith('.') ? host.slice(0, -1) : host);
}

function isLocalHost(host: string, policy: CrossSitePolicy): boolean {
  return isLoopbackHost(host) || policy.localHosts.has(host);
}

