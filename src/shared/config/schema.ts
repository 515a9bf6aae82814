/**
 * The config schema: the single source of truth for what config.yaml may hold, its defaults,
 * and the types the rest of Sluice reads. Every object is strict, so a misspelt key is an
 * error instead of a silently ignored setting. Durations are written as strings (`2s`) and
 * come out as whole milliseconds; addresses stay `host:port` strings, checked here.
 *
 * Messages are written for operators: lower case, no zod jargon, and never a type name they
 * did not write (`expected host:port`, not `Invalid input: expected string`).
 */
import { z } from 'zod';
import { analyzeHostPort, formatHostPort, listenAddressesOverlap, canonicalHost } from '../address.ts';
import type { HostPort } from '../address.ts';
import { formatDuration } from '../duration.ts';
import { formatCidr, parseCidr } from '../cidr.ts';
import { payloadProblem } from '../payload.ts';
import { discoverySchema } from './discovery-schema.ts';
import { registrySchema } from './registry-schema.ts';
import { DEFAULT_BACKEND_SLOTS, MAX_BACKEND_SLOTS, MIN_BACKEND_SLOTS } from '../counters.ts';
import { MISSING, address, backendAddress, duration, expected, integer, list, name, strictObject, text } from './schema-kit.ts';

/** Values the contract names for later releases: refused with "not supported yet", not "invalid". */
const LATER_HEALTH_CHECKS: readonly string[] = [];

export const ALGORITHMS = ['round_robin', 'least_connections', 'random', 'power_of_two', 'consistent_hash'] as const;
export const HASH_KEYS = ['source_ip', 'source_ip_port'] as const;
export const DEFAULT_MAGLEV_TABLE_SIZE = 65_537;
const MAGLEV_TABLE_MAX = 1_000_003;

// ── edge protection and routing (limits, acl, accept_proxy, sni_routes, send_proxy) ──────

const RATE = /^(\d+(?:\.\d+)?)\/(s|m|h)$/;
const RATE_MESSAGE = 'expected a rate like 50/s, 600/m or 10/h';
const SECONDS_PER: Record<string, number> = { s: 1, m: 60, h: 3600 };
/** A faster per-IP rate would be measured too coarsely by the 10 µs tick (shared/ip-limits.ts). */
const MAX_RATE_PER_SECOND = 10_000;
/** A bucket may take at most this long to refill (keeps it far from the tick wrap). */
const MAX_REFILL_SECONDS = 3600;
/** Per listener; the trie grows with the blocks, and every worker holds one per listener. */
export const MAX_ACL_ENTRIES = 10_000;

/** `50/s` in, connections per second out. */
function rate() {
  return z.string({ error: expected(RATE_MESSAGE) }).transform((value, ctx) => {
    const match = RATE.exec(value.trim());
    const perSecond = match === null ? Number.NaN : Number(match[1]) / (SECONDS_PER[match[2] ?? ''] ?? Number.NaN);
    if (!(perSecond > 0)) {
      ctx.addIssue({ code: 'custom', message: RATE_MESSAGE });
      return z.NEVER;
    }
    if (perSecond > MAX_RATE_PER_SECOND || perSecond < 1 / 3600) {
      ctx.addIssue({ code: 'custom', message: `must be between 1/h and ${MAX_RATE_PER_SECOND}/s` });
      return z.NEVER;
    }
    return perSecond;
  });
}

const limitsSchema = strictObject({
  per_ip_connections: integer(1, 1_000_000).optional(),
  per_ip_rate: rate().optional(),
  burst: integer(1, 1_000_000).optional(),
  max_connections: integer(1, 10_000_000).optional(),
}).transform((limits, ctx) => {
  if (limits.burst !== undefined && limits.per_ip_rate === undefined) {
    ctx.addIssue({ code: 'custom', path: ['burst'], message: 'burst needs per_ip_rate' });
    return z.NEVER;
  }
  if (limits.per_ip_rate === undefined) return limits;
  // Without a burst, a client may open one second's worth of connections at once.
  const burst = limits.burst ?? Math.max(1, Math.ceil(limits.per_ip_rate));
  if ((burst - 1) / limits.per_ip_rate > MAX_REFILL_SECONDS) {
    ctx.addIssue({ code: 'custom', path: ['burst'], message: `a burst of ${burst} at per_ip_rate takes more than 1h to refill` });
    return z.NEVER;
  }
  return { ...limits, burst };
});

/** A CIDR block in, its canonical text out (`10.0.0.0/8`). */
function cidr() {
  return z.string({ error: expected('expected a CIDR block like 10.0.0.0/8 or 2001:db8::/32') }).transform((value, ctx) => {
    const parsed = parseCidr(value.trim());
    if (!parsed.ok) {
      ctx.addIssue({ code: 'custom', message: parsed.message });
      return z.NEVER;
    }
    return formatCidr(parsed.cidr);
  });
}

export const aclSchema = strictObject({
  allow: list(cidr()).default([]),
  deny: list(cidr()).default([]),
}).superRefine((acl, ctx) => {
  if (acl.allow.length + acl.deny.length > MAX_ACL_ENTRIES) {
    ctx.addIssue({ code: 'custom', message: `at most ${MAX_ACL_ENTRIES} blocks (allow and deny together); use shorter prefixes` });
  }
});

const ACCEPT_PROXY_MESSAGE = 'expected true, false or {trusted: [CIDR, ...]}';

const trustedProxiesSchema = strictObject({
  trusted: list(cidr())
    .min(1, { error: 'expected at least one block; write accept_proxy: false to read no header' })
    .max(MAX_ACL_ENTRIES, { error: `at most ${MAX_ACL_ENTRIES} blocks; use shorter prefixes` }),
});

/**
 * `accept_proxy`: `true` trusts every peer to name its client in a PROXY header; `{trusted:
 * [...]}` only peers in those blocks (the balancers in front), and refuses the others.
 * Chosen by the value's type rather than with z.union, which would hide a bad block inside
 * `trusted` behind one "expected true, false or ..." for the whole key.
 */
function acceptProxy() {
  return z.unknown().transform((value, ctx): boolean | z.output<typeof trustedProxiesSchema> => {
    if (typeof value === 'boolean') return value;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      ctx.addIssue({ code: 'custom', message: ACCEPT_PROXY_MESSAGE });
      return z.NEVER;
    }
    const parsed = trustedProxiesSchema.safeParse(value);
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
    return z.NEVER;
  });
}

const SERVER_NAME = /^(?:\*\.)?(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;
const SERVER_NAME_MESSAGE = 'expected a host name like api.example.com, or *.example.com for its subdomains';

const sniRouteSchema = strictObject({
  server_name: z
    .string({ error: expected(SERVER_NAME_MESSAGE) })
    .transform((value) => value.trim().toLowerCase().replace(/\.$/, ''))
    .refine((value) => SERVER_NAME.test(value), { error: SERVER_NAME_MESSAGE }),
  cluster: name(),
});

/** One weighted target of a listener that splits its connections (canary releases). */
const routeSchema = strictObject({
  cluster: name(),
  weight: integer(0, 10_000).default(1),
});

/**
 * Socket buffer sizes of a UDP listener, in bytes. The floor keeps room for one datagram of
 * the largest size UDP carries (64 KiB); the ceiling bounds kernel memory per socket (the
 * kernel also caps the value at net.core.rmem_max / wmem_max).
 */
export const UDP_BUFFER_MIN = 65_536;
export const UDP_BUFFER_MAX = 64 * 1024 * 1024;

const udpSchema = strictObject({
  session_timeout: duration({ positive: true }).prefault('30s'),
  // Each session holds one socket (one file descriptor) to its backend.
  max_sessions: integer(1, 1_000_000).default(100_000),
  max_replies: integer(0, 1_000_000).default(0),
  recv_buffer: integer(UDP_BUFFER_MIN, UDP_BUFFER_MAX).default(1_048_576),
  send_buffer: integer(UDP_BUFFER_MIN, UDP_BUFFER_MAX).default(1_048_576),
});

const UDP_DEFAULTS = udpSchema.parse({});

const PROTOCOL_MESSAGE = 'expected tcp or udp';

const listenerFields = strictObject({
  name: name(),
  protocol: z.enum(['tcp', 'udp'], { error: expected(PROTOCOL_MESSAGE) }).default('tcp'),
  listen: address(),
  // At most one of the two (checked below): every connection to one cluster, or split by
  // weight; neither only with sni_routes (no default: a client no route matches is closed).
  cluster: name().optional(),
  routes: list(routeSchema, 'expected a list like [{cluster: web, weight: 90}]').min(1, { error: 'expected at least one route' }).optional(),
  limits: limitsSchema.optional(),
  acl: aclSchema.optional(),
  accept_proxy: acceptProxy().optional(),
  sni_routes: list(sniRouteSchema).min(1, { error: 'expected at least one route; leave sni_routes out for none' }).optional(),
  udp: udpSchema.optional(),
  // Runs even when other fields failed, so a missing target is reported with them.
}).superRefine(checkListenerTarget, { when: () => true });

/** The edge gate's settings (edge-gate.ts), which only the TCP path runs. */
const TCP_ONLY_LISTENER_KEYS = ['limits', 'acl', 'accept_proxy', 'sni_routes'] as const;

/** A TCP listener carries no `udp` settings; a UDP listener always does (defaults filled in). */
const listenerSchema = listenerFields
  .superRefine((listener, ctx) => {
    if (listener.protocol !== 'udp' && listener.udp !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['udp'], message: 'udp settings apply only to a listener with protocol: udp' });
    }
    if (listener.protocol === 'udp') {
      for (const key of TCP_ONLY_LISTENER_KEYS) {
        if (listener[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `${key} applies only to TCP listeners (protocol: udp has no edge gate)` });
      }
    }
  })
  .transform((listener): TcpListenerConfig | UdpListenerConfig => {
    const { udp, protocol, ...common } = listener;
    return protocol === 'udp' ? { ...common, protocol, udp: udp ?? UDP_DEFAULTS } : { ...common, protocol };
  });

export type UdpConfig = z.output<typeof udpSchema>;
type ListenerCommon = Omit<z.output<typeof listenerFields>, 'protocol' | 'udp'>;
export interface TcpListenerConfig extends ListenerCommon {
  readonly protocol: 'tcp';
}
export interface UdpListenerConfig extends ListenerCommon {
  readonly protocol: 'udp';
  readonly udp: UdpConfig;
}

/**
 * A health-check payload: plain text (sent as UTF-8), or `hex:` and an even number of hex
 * digits for binary payloads (`hex:0a0b`). Decoded by shared/payload.ts.
 */
function payload() {
  return text().superRefine((value, ctx) => {
    const problem = payloadProblem(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });
}

/** Reads the value defensively: when other fields failed, it may still hold raw input. */
function checkListenerTarget(listener: unknown, ctx: z.RefinementCtx): void {
  if (!isRecord(listener)) return;
  if (listener.cluster !== undefined && listener.routes !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['routes'], message: 'give either cluster or routes, not both' });
    return;
  }
  if (listener.cluster === undefined && listener.routes === undefined) {
    if (listener.sni_routes === undefined) ctx.addIssue({ code: 'custom', path: ['cluster'], message: MISSING });
    return;
  }
  const routes = records(listener.routes);
  if (routes.length > 0 && routes.every(([, route]) => route.weight === 0)) {
    ctx.addIssue({ code: 'custom', path: ['routes'], message: 'at least one route needs a weight above 0' });
  }
  const firstIndex = new Map<unknown, number>();
  for (const [index, route] of routes) {
    const first = firstIndex.get(route.cluster);
    if (first === undefined) firstIndex.set(route.cluster, index);
    else if (typeof route.cluster === 'string') {
      ctx.addIssue({ code: 'custom', path: ['routes', index, 'cluster'], message: `cluster "${route.cluster}" is already routed at routes[${first}]` });
    }
  }
}

/** The weighted clusters a listener sends connections to (one route of weight 1 for `cluster`). */
export function listenerRoutes(listener: ListenerConfig): readonly RouteConfig[] {
  if (listener.routes !== undefined) return listener.routes;
  return listener.cluster === undefined ? [] : [{ cluster: listener.cluster, weight: 1 }];
}

const ALGORITHM_MESSAGE = `expected ${ALGORITHMS.slice(0, -1).join(', ')} or ${ALGORITHMS.at(-1) ?? ''}`;
const algorithmSchema = z.enum(ALGORITHMS, { error: expected(ALGORITHM_MESSAGE) }).default('round_robin');

const hashKeySchema = z.enum(HASH_KEYS, { error: expected('expected source_ip or source_ip_port') });

const MAGLEV_SIZE_MESSAGE = `expected a prime number from 3 to ${MAGLEV_TABLE_MAX} (default ${DEFAULT_MAGLEV_TABLE_SIZE})`;
const maglevTableSizeSchema = integer(3, MAGLEV_TABLE_MAX).refine(isPrime, { error: MAGLEV_SIZE_MESSAGE });

export function isPrime(value: number): boolean {
  if (!Number.isInteger(value) || value < 2) return false;
  if (value % 2 === 0) return value === 2;
  for (let d = 3; d * d <= value; d += 2) if (value % d === 0) return false;
  return true;
}

const stickySchema = strictObject({
  ttl: duration({ positive: true }).prefault('10m'),
  max_entries: integer(1, 10_000_000).default(100_000),
});

const queueSchema = strictObject({
  size: integer(1, 1_000_000).default(100),
  timeout: duration({ positive: true }).prefault('1s'),
});

/** Connections one backend may hold at once, over all workers. */
function maxConnections() {
  return integer(1, 10_000_000).optional();
}

/** Shared by the checks that probe. */
const probeTiming = {
  interval: duration({ positive: true }).prefault('2s'),
  timeout: duration({ positive: true }).prefault('1s'),
  rise: integer(1, 100).default(2),
  fall: integer(1, 100).default(3),
};

/** A probe that could outlive its interval would overlap the next one to the same backend. */
function timeoutShorterThanInterval(check: { readonly interval: number; readonly timeout: number }, ctx: z.RefinementCtx): void {
  if (check.timeout >= check.interval) {
    ctx.addIssue({
      code: 'custom',
      path: ['timeout'],
      message: `timeout (${formatDuration(check.timeout)}) must be shorter than interval (${formatDuration(check.interval)})`,
    });
  }
}

const healthCheckSchema = z.discriminatedUnion(
  'type',
  [
    strictObject({ type: z.literal('none') }),
    strictObject({
      type: z.literal('tcp'),
      ...probeTiming,
      send: text().optional(),
      expect: text().optional(),
    }).superRefine(timeoutShorterThanInterval),
    strictObject({
      type: z.literal('udp'),
      ...probeTiming,
      send: payload(),
      expect: payload().optional(),
    }).superRefine(timeoutShorterThanInterval),
    strictObject({
      type: z.literal('http'),
      ...probeTiming,
      path: text()
        .refine((path) => path.startsWith('/'), { error: 'must start with "/"' })
        .default('/'),
      expect_status: integer(100, 599).default(200),
      host: text().optional(),
    }).superRefine(timeoutShorterThanInterval),
  ],
  {
    error: (issue) => {
      // zod types this issue as a union mismatch only, but a value that is not a mapping at
      // all (`health_check: tcp`) arrives here as invalid_type.
      const code: string = issue.code;
      if (code !== 'invalid_union') return expected('expected a mapping like {type: tcp}')(issue);
      const type = (issue.input as { type?: unknown } | undefined)?.type;
      if (typeof type === 'string' && LATER_HEALTH_CHECKS.includes(type)) return `${type} health checks are not supported yet`;
      return type === undefined ? MISSING : 'expected none, tcp, http or udp';
    },
  },
);

const passiveSchema = strictObject({
  consecutive_failures: integer(1, 1000).default(5),
});

/**
 * How long a passively ejected backend stays out when there is no active check to bring it
 * back: base × (ejections in a row), capped at max.
 */
const outlierSchema = strictObject({
  base_ejection_time: duration({ positive: true }).prefault('30s'),
  max_ejection_time: duration({ positive: true }).prefault('5m'),
}).superRefine((outlier, ctx) => {
  if (outlier.max_ejection_time < outlier.base_ejection_time) {
    ctx.addIssue({
      code: 'custom',
      path: ['max_ejection_time'],
      message: `max_ejection_time (${formatDuration(outlier.max_ejection_time)}) must not be shorter than base_ejection_time (${formatDuration(outlier.base_ejection_time)})`,
    });
  }
});

const panicModeSchema = z
  .enum(['refuse', 'route_all'], { error: expected('expected refuse or route_all') })
  .default('refuse');

const backendSchema = strictObject({
  address: backendAddress(),
  weight: integer(0, 10_000).default(1),
  max_connections: maxConnections(),
});

const clusterSchema = strictObject({
  name: name(),
  algorithm: algorithmSchema,
  // Only with consistent_hash (checked below); the defaults are filled in where they are used.
  hash_key: hashKeySchema.optional(),
  maglev_table_size: maglevTableSizeSchema.optional(),
  sticky: stickySchema.optional(),
  max_connections: maxConnections(),
  queue: queueSchema.optional(),
  connect_timeout: duration({ positive: true }).prefault('2s'),
  idle_timeout: duration({ positive: true }).prefault('5m'),
  // `prefault` (not `default`) so the default goes through parsing and gets its own defaults.
  health_check: healthCheckSchema.prefault({ type: 'none' }),
  passive: passiveSchema.prefault({}),
  outlier: outlierSchema.prefault({}),
  drain_timeout: duration().prefault('30s'),
  // 0s = off: a backend that turns healthy gets its whole weight at once.
  slow_start: duration().prefault('0s'),
  panic_mode: panicModeSchema,
  // A cluster with `discovery` starts empty and is filled by its source.
  backends: list(backendSchema).default([]),
  discovery: discoverySchema.optional(),
  send_proxy: z.enum(['v1', 'v2'], { error: expected('expected v1 or v2') }).optional(),
}).superRefine(checkClusterPolicy);

function checkClusterPolicy(
  cluster: {
    readonly algorithm: string;
    readonly hash_key?: unknown;
    readonly maglev_table_size?: unknown;
    readonly max_connections?: number | undefined;
    readonly queue?: unknown;
    readonly backends: readonly { readonly max_connections?: number | undefined }[];
    readonly discovery?: unknown;
  },
  ctx: z.RefinementCtx,
): void {
  if (cluster.discovery !== undefined && cluster.backends.length > 0) {
    ctx.addIssue({ code: 'custom', path: ['discovery'], message: 'give either backends or discovery, not both' });
  }
  for (const key of ['hash_key', 'maglev_table_size'] as const) {
    if (cluster[key] !== undefined && cluster.algorithm !== 'consistent_hash') {
      ctx.addIssue({ code: 'custom', path: [key], message: `${key} is used only by algorithm: consistent_hash` });
    }
  }
  const limited = cluster.max_connections !== undefined || cluster.backends.some((b) => b.max_connections !== undefined);
  if (cluster.queue !== undefined && !limited) {
    ctx.addIssue({
      code: 'custom',
      path: ['queue'],
      message: 'a queue needs max_connections (on the cluster or its backends): without a limit nothing ever waits',
    });
  }
}

const adminSchema = strictObject({
  listen: address().default('127.0.0.1:9090'),
  token_env: z
    .string({ error: expected('expected an environment variable name') })
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'expected an environment variable name' })
    .optional(),
  /** GET /metrics has per-backend series for at most this many backends (about 60 samples each). */
  metrics_backend_limit: integer(0, 1_048_576).default(20_000),
});

const shutdownSchema = strictObject({
  drain_timeout: duration().prefault('30s'),
  delay: duration().prefault('0s'),
});

const SAMPLING_MESSAGE = 'expected a fraction from 0 to 1 (1 = every connection)';

/**
 * Access logs are one setting for the whole process (not per listener): each data-plane
 * worker owns one asynchronous destination and makes one sampling decision per accepted
 * connection, and every line names its listener, so filtering by listener is a grep.
 */
const accessLogSchema = strictObject({
  enabled: z.boolean({ error: expected('expected true or false') }).default(false),
  sampling: z
    .number({ error: expected(SAMPLING_MESSAGE) })
    .min(0, { error: SAMPLING_MESSAGE })
    .max(1, { error: SAMPLING_MESSAGE })
    .default(1),
  /** A file the lines are appended to; without it they go to stdout with the daemon's logs. */
  path: z.string({ error: expected('expected a file path') }).min(1, { error: 'expected a file path' }).optional(),
});

const WORKERS_MESSAGE = 'expected auto or an integer from 1 to 64';
// The union needs the message too: when the value is a number, zod reports the int's own issue.
const workersSchema = z
  .union([z.literal('auto'), z.int().min(1, { error: WORKERS_MESSAGE }).max(64, { error: WORKERS_MESSAGE })], {
    error: expected(WORKERS_MESSAGE),
  })
  .default('auto');

/**
 * Sizes the shared buffers at start-up (backend counter rows and the snapshot slots); a
 * reload keeps the running value (docs/reload.md). Pages never touched cost no memory.
 */
const capacitySchema = strictObject({
  backends: integer(MIN_BACKEND_SLOTS, MAX_BACKEND_SLOTS).default(DEFAULT_BACKEND_SLOTS),
});

const AT_LEAST_ONE_LISTENER = 'at least one listener is required';
const AT_LEAST_ONE_CLUSTER = 'at least one cluster is required';

export const configSchema = strictObject({
  workers: workersSchema,
  admin: adminSchema.prefault({}),
  state_file: z.string({ error: expected('expected a file path') }).min(1, { error: 'expected a file path' }).optional(),
  shutdown: shutdownSchema.prefault({}),
  access_log: accessLogSchema.prefault({}),
  capacity: capacitySchema.prefault({}),
  listeners: list(listenerSchema, 'expected a list of listeners').min(1, { error: AT_LEAST_ONE_LISTENER }),
  clusters: list(clusterSchema, 'expected a list of clusters').min(1, { error: AT_LEAST_ONE_CLUSTER }),
  registry: registrySchema.optional(),
})
  // Cross-references run even when some fields are invalid, so one pass reports every error.
  .superRefine(checkReferences, { when: () => true });

export type Config = z.output<typeof configSchema>;
export type ListenerConfig = z.output<typeof listenerSchema>;
export type RouteConfig = z.output<typeof routeSchema>;
export type ClusterConfig = z.output<typeof clusterSchema>;
export type BackendConfig = z.output<typeof backendSchema>;
export type HealthCheckConfig = z.output<typeof healthCheckSchema>;
export type ActiveHealthCheckConfig = Exclude<HealthCheckConfig, { type: 'none' }>;
export type PanicMode = z.output<typeof panicModeSchema>;
export type AdminConfig = z.output<typeof adminSchema>;
export type LimitsConfig = z.output<typeof limitsSchema>;
export type AclConfig = z.output<typeof aclSchema>;
export type SniRouteConfig = z.output<typeof sniRouteSchema>;
export type ShutdownConfig = z.output<typeof shutdownSchema>;
export type AccessLogConfig = z.output<typeof accessLogSchema>;

// ---- cross-references -------------------------------------------------------------------
// These read the value defensively: when other fields failed, it may still hold raw input.

type Path = (string | number)[];

interface Named {
  readonly path: Path;
  readonly name: string;
}

interface Bound {
  readonly path: Path;
  readonly owner: string;
  readonly text: string;
  readonly address: HostPort;
  /** TCP and UDP ports are separate name spaces: only the same protocol can conflict. */
  readonly protocol: 'tcp' | 'udp';
}

function checkReferences(value: unknown, ctx: z.RefinementCtx): void {
  if (!isRecord(value)) return;
  const listeners = records(value.listeners);
  const clusters = records(value.clusters);
  const report = (path: Path, message: string): void => {
    ctx.addIssue({ code: 'custom', path, message });
  };

  checkUniqueNames('listener', namesOf('listeners', listeners), report);
  const clusterNames = namesOf('clusters', clusters);
  checkUniqueNames('cluster', clusterNames, report);
  checkClusterReferences(listeners, clusterNames, report);
  checkSniRoutes(listeners, report);
  checkUdpClusters(listeners, clusters, report);
  const bound = listenAddresses(listeners);
  checkListenOverlaps(bound, report);
  checkAdminAddress(value.admin, bound, report);
  for (const [index, cluster] of clusters) checkUniqueBackends(index, cluster, report);
}

type Report = (path: Path, message: string) => void;

function checkUniqueNames(kind: string, named: readonly Named[], report: Report): void {
  const first = new Map<string, Named>();
  for (const entry of named) {
    const earlier = first.get(entry.name);
    if (earlier === undefined) first.set(entry.name, entry);
    else report(entry.path, `duplicate ${kind} name "${entry.name}" (first at ${formatPath(earlier.path.slice(0, -1))})`);
  }
}

function checkClusterReferences(listeners: readonly Entry[], clusterNames: readonly Named[], report: Report): void {
  // With no cluster named at all, the missing or empty `clusters` is the one error worth reading.
  if (clusterNames.length === 0) return;
  const known = clusterNames.map((cluster) => cluster.name);
  const check = (path: Path, cluster: unknown): void => {
    if (typeof cluster === 'string' && !known.includes(cluster)) report(path, `unknown cluster "${cluster}"; known: ${known.join(', ')}`);
  };
  for (const [index, listener] of listeners) {
    check(['listeners', index, 'cluster'], listener.cluster);
    for (const [routeIndex, route] of records(listener.routes)) check(['listeners', index, 'routes', routeIndex, 'cluster'], route.cluster);
    for (const [route, entry] of records(listener.sni_routes)) check(['listeners', index, 'sni_routes', route, 'cluster'], entry.cluster);
  }
}

/** A UDP session sends no PROXY header: a cluster that needs one cannot serve a UDP listener. */
function checkUdpClusters(listeners: readonly Entry[], clusters: readonly Entry[], report: Report): void {
  const udpRouted = new Set<unknown>();
  for (const [, listener] of listeners) {
    if (listener.protocol !== 'udp') continue;
    udpRouted.add(listener.cluster);
    for (const [, route] of records(listener.routes)) udpRouted.add(route.cluster);
  }
  for (const [index, cluster] of clusters) {
    if (cluster.send_proxy !== undefined && typeof cluster.name === 'string' && udpRouted.has(cluster.name)) {
      report(['clusters', index, 'send_proxy'], `send_proxy applies only to clusters TCP listeners route to; cluster "${cluster.name}" serves a udp listener`);
    }
  }
}

/** One route per server name: with two, which one wins would be an accident of order. */
function checkSniRoutes(listeners: readonly Entry[], report: Report): void {
  for (const [index, listener] of listeners) {
    const first = new Map<string, number>();
    for (const [route, entry] of records(listener.sni_routes)) {
      if (typeof entry.server_name !== 'string') continue;
      const earlier = first.get(entry.server_name);
      if (earlier === undefined) first.set(entry.server_name, route);
      else report(['listeners', index, 'sni_routes', route, 'server_name'], `duplicate server_name "${entry.server_name}" (first at sni_routes[${earlier}])`);
    }
  }
}

function listenAddresses(listeners: readonly Entry[]): Bound[] {
  const bound: Bound[] = [];
  for (const [index, listener] of listeners) {
    const address = hostPortOf(listener.listen);
    if (address === undefined) continue;
    const owner = typeof listener.name === 'string' ? `listener "${listener.name}"` : `listeners[${index}]`;
    const protocol = listener.protocol === 'udp' ? 'udp' : 'tcp';
    bound.push({ path: ['listeners', index, 'listen'], owner, text: listener.listen as string, address, protocol });
  }
  return bound;
}

function checkListenOverlaps(bound: readonly Bound[], report: Report): void {
  bound.forEach((listener, i) => {
    const earlier = bound
      .slice(0, i)
      .find((other) => other.protocol === listener.protocol && listenAddressesOverlap(listener.address, other.address));
    if (earlier !== undefined) report(listener.path, conflictMessage(listener, earlier));
  });
}

function checkAdminAddress(admin: unknown, bound: readonly Bound[], report: Report): void {
  const listen = isRecord(admin) ? admin.listen : undefined;
  const address = hostPortOf(listen);
  if (address === undefined) return;
  const self: Bound = { path: ['admin', 'listen'], owner: 'the admin API', text: listen as string, address, protocol: 'tcp' };
  const taken = bound.find((listener) => listener.protocol === 'tcp' && listenAddressesOverlap(address, listener.address));
  if (taken !== undefined) report(self.path, conflictMessage(self, taken));
}

function conflictMessage(self: Bound, other: Bound): string {
  const same = canonicalHost(self.address.host) === canonicalHost(other.address.host);
  return same
    ? `${self.text} is already used by ${other.owner}`
    : `${self.text} overlaps ${other.owner} on ${other.text} (a wildcard host takes the port on every interface)`;
}

function checkUniqueBackends(clusterIndex: number, cluster: Record<string, unknown>, report: Report): void {
  const seen = new Map<string, number>();
  for (const [index, backend] of records(cluster.backends)) {
    const address = hostPortOf(backend.address);
    if (address === undefined) continue;
    const key = formatHostPort(canonicalHost(address.host), address.port);
    const first = seen.get(key);
    if (first === undefined) {
      seen.set(key, index);
      continue;
    }
    const clusterName = typeof cluster.name === 'string' ? `cluster "${cluster.name}"` : `clusters[${clusterIndex}]`;
    report(
      ['clusters', clusterIndex, 'backends', index, 'address'],
      `duplicate backend ${backend.address as string} in ${clusterName} (first at backends[${first}])`,
    );
  }
}

type Entry = [number, Record<string, unknown>];

function records(value: unknown): Entry[] {
  if (!Array.isArray(value)) return [];
  const entries: Entry[] = [];
  value.forEach((item: unknown, index) => {
    if (isRecord(item)) entries.push([index, item]);
  });
  return entries;
}

function namesOf(section: string, entries: readonly Entry[]): Named[] {
  const named: Named[] = [];
  for (const [index, entry] of entries) {
    if (typeof entry.name === 'string') named.push({ path: [section, index, 'name'], name: entry.name });
  }
  return named;
}

function hostPortOf(value: unknown): HostPort | undefined {
  if (typeof value !== 'string') return undefined;
  const analysis = analyzeHostPort(value);
  return analysis.ok ? analysis : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `listeners[0].listen`; the root is `(root)`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    out += typeof segment === 'number' ? `[${segment}]` : out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out === '' ? '(root)' : out;
}
