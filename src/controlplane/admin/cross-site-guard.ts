/**
 * The admin app's side of cross-site.ts: refuses, with 403 CROSS_SITE_REFUSED, what a browser
 * sends for another site's page, before authentication and before any route runs.
 */
import { hostname, networkInterfaces } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { canonicalHost, parseHostPort } from '../../shared/address.ts';
import { crossSiteProblem } from './cross-site.ts';
import { sendError } from './errors.ts';

export interface CrossSiteGuardOptions {
  /** With a token the Host header is not checked (see CrossSitePolicy.checkHost). */
  readonly tokenConfigured: boolean;
  /** admin.listen as configured (`host:port`); undefined in tests without one. */
  readonly listen: string | undefined;
  /**
   * Paths whose Host is not checked: orchestrators probe /healthz and /readyz by whatever
   * address reaches the process (a NAT'd or port-mapped one included), and they answer
   * nothing but alive/ready.
   */
  readonly anyHost: ReadonlySet<string>;
}

export function registerCrossSiteGuard(app: FastifyInstance, options: CrossSiteGuardOptions): void {
  const listenHost = options.listen === undefined ? undefined : parseHostPort(options.listen)?.host;
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const { headers } = request;
    const problem = crossSiteProblem(
      {
        method: request.method,
        host: headers.host,
        origin: headers.origin,
        fetchSite: one(headers['sec-fetch-site']),
        fetchMode: one(headers['sec-fetch-mode']),
        fetchDest: one(headers['sec-fetch-dest']),
      },
      { checkHost: !options.tokenConfigured && !options.anyHost.has(path), localHosts: localHosts(listenHost, request.socket.localAddress) },
    );
    if (problem === undefined) return undefined;
    request.log.debug({ header: problem.header, method: request.method, path }, 'admin: cross-site request refused');
    return sendError(reply, 403, 'CROSS_SITE_REFUSED', problem.message);
  });
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The names of this server, read only when a Host is not a loopback one (getifaddrs costs
 * about 0.1 ms) and afresh each time, so an address that came up after start-up counts.
 */
function localHosts(listenHost: string | undefined, localAddress: string | undefined): { has(host: string): boolean } {
  let known: Set<string> | undefined;
  return {
    has(host) {
      known ??= collectLocalHosts(listenHost, localAddress);
      return known.has(host);
    },
  };
}

function collectLocalHosts(listenHost: string | undefined, localAddress: string | undefined): Set<string> {
  const names = [hostname(), ...(listenHost === undefined ? [] : [listenHost]), ...(localAddress === undefined ? [] : [unmapped(localAddress)])];
  for (const list of Object.values(interfaceAddresses())) {
    for (const entry of list ?? []) names.push(entry.address);
  }
  return new Set(names.map((name) => canonicalHost(name)));
}

function interfaceAddresses(): ReturnType<typeof networkInterfaces> {
  try {
    return networkInterfaces();
  } catch {
    // Some sandboxes refuse getifaddrs; loopback names and admin.listen still work.
    return {};
  }
}

/** A dual-stack socket reports an IPv4 peer as `::ffff:a.b.c.d`; a browser's Host says `a.b.c.d`. */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
}
