/**
 * `host:port` addresses as written in config.yaml and the admin API: `1.2.3.4:80`,
 * `[::1]:80`, `localhost:80`, `name.example:80`. Hosts are kept as written (no DNS lookup
 * here); IPv6 hosts are returned without their brackets.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Why a text is not an address: its shape, or only its port number. */
export type HostPortProblem = 'syntax' | 'port_range';

export type HostPortAnalysis =
  | { readonly ok: true; readonly host: string; readonly port: number }
  | { readonly ok: false; readonly problem: HostPortProblem };

// Labels may hold `_`: container and service-discovery names often do, and resolvers accept them.
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/;
const DOTTED_NUMBERS = /^[\d.]+$/;
const DIGITS = /^\d+$/;
const MAX_PORT = 65_535;

export function parseHostPort(text: string): HostPort | undefined {
  const analysis = analyzeHostPort(text);
  return analysis.ok ? { host: analysis.host, port: analysis.port } : undefined;
}

/** Like `parseHostPort`, but says whether only the port was wrong, for a precise message. */
export function analyzeHostPort(text: string): HostPortAnalysis {
  const parts = splitHostPort(text);
  if (parts === undefined || !isValidHost(parts.host, parts.bracketed) || !DIGITS.test(parts.port)) {
    return { ok: false, problem: 'syntax' };
  }
  const port = Number(parts.port);
  if (port < 1 || port > MAX_PORT) return { ok: false, problem: 'port_range' };
  return { ok: true, host: parts.host, port };
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Why `text` cannot be a backend's address, or undefined when it can: the one rule config.yaml,
 * the admin API and discovery share. Beyond the `host:port` shape, a wildcard host (0.0.0.0,
 * ::) is refused: it names every interface for a listener, and connecting to it reaches
 * whatever listens on this host, which is never what a backend entry means.
 */
export function backendAddressProblem(text: string): string | undefined {
  const analysis = analyzeHostPort(text);
  if (!analysis.ok) return analysis.problem === 'port_range' ? 'port must be 1-65535' : 'expected host:port';
  if (isWildcardHost(analysis.host)) return `${analysis.host} means every interface, not a host to connect to: give the backend's own address`;
  return undefined;
}

/**
 * `localhost`, 127.0.0.0/8, ::1 and 127/8 mapped into IPv6 (`::ffff:7f00:1`), however spelt:
 * the one loopback rule of the admin guard and of the exposure warnings.
 */
export function isLoopbackHost(host: string): boolean {
  const h = canonicalHost(host);
  if (h === 'localhost' || h === '::1') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  return /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(h);
}

/** True for the hosts that bind every interface. */
export function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || canonicalHost(host) === '::';
}

/**
 * Whether two listening addresses would fight over one port: the same host and port, or the
 * same port where either side is a wildcard (which takes the port on every interface).
 * Names are not resolved, so `localhost` and `127.0.0.1` are not seen as the same.
 */
export function listenAddressesOverlap(a: HostPort, b: HostPort): boolean {
  if (a.port !== b.port) return false;
  return isWildcardHost(a.host) || isWildcardHost(b.host) || canonicalHost(a.host) === canonicalHost(b.host);
}

/** One spelling per host, so `[::1]` and `[0:0::1]`, or `Example.COM` and `example.com`, compare equal. */
export function canonicalHost(host: string): string {
  if (isIPv6(host) && !host.includes('%')) {
    // The WHATWG URL parser compresses IPv6 addresses to their canonical (RFC 5952) form.
    return new URL(`http://[${host}]/`).hostname.slice(1, -1);
  }
  return host.toLowerCase();
}

function splitHostPort(text: string): { host: string; port: string; bracketed: boolean } | undefined {
  if (text.startsWith('[')) {
    const close = text.indexOf(']:');
    if (close < 0) return undefined;
    return { host: text.slice(1, close), port: text.slice(close + 2), bracketed: true };
  }
  const colon = text.lastIndexOf(':');
  if (colon < 0) return undefined;
  return { host: text.slice(0, colon), port: text.slice(colon + 1), bracketed: false };
}

function isValidHost(host: string, bracketed: boolean): boolean {
  if (bracketed) return isIPv6(host);
  // Something that looks like an IPv4 address must be one: `999.1.1.1` is a typo, not a name.
  if (DOTTED_NUMBERS.test(host)) return isIPv4(host);
  return HOSTNAME.test(host);
}
