/**
 * Edge protection and routing for one accepted connection, before any backend is contacted:
 *
 *   max_connections → [trusted peer → PROXY header] → acl → per-IP count and rate → [ClientHello → SNI route] → session
 *
 * - max_connections comes first because it does not depend on who the client is (and so
 *   also bounds connections still sending their PROXY header).
 * - With accept_proxy the acl and per-IP limits apply to the address the header carries
 *   (the peer is the balancer in front); otherwise to the peer address. With
 *   `accept_proxy.trusted`, a peer outside those blocks is refused before its header is read:
 *   a header names any address its sender likes, so only the balancers' headers count.
 * - The ClientHello is read only for admitted clients, and forwarded untouched: its bytes
 *   go back into the socket (`unshift`) and the session pipes them to the backend. A PROXY
 *   header is stripped: only the bytes after it go back.
 * - A refused connection is closed at once, counted by reason, and gives back every count
 *   it took. An admitted one hands its lease to the session, which gives it back at close.
 *
 * Listeners without edge settings never get here (TcpProxy.handle), so their accept path
 * is unchanged. With them, the synchronous checks (acl, limits) allocate a lease and a
 * small per-connection record; the preludes allocate their buffers and one timer each.
 */
import type net from 'node:net';
import { formatHostPort } from '../shared/address.ts';
import { ListenerCounter, type WorkerCounters } from '../shared/counters.ts';
import { parseIpInto } from '../shared/ip-address.ts';
import { Admission, TICKS_PER_SECOND, type IpLimitTable } from '../shared/ip-limits.ts';
import type { ListenerBinding } from '../shared/messages.ts';
import type { TerminationReason } from './access-log.ts';
import type { EdgePolicy } from './edge-policy.ts';
import { readPrelude, type PreludeOutcome } from './prelude.ts';
import { parseProxyHeader, type Endpoint, type ProxyHeader } from './proxy-protocol.ts';
import { chooseCluster, type ClusterRoute, type ListenerRoute } from './routing-table.ts';
import { parseClientHello, type ClientHello } from './tls-client-hello.ts';
import { sharedMonotonicMs } from '../shared/shared-clock.ts';

/** A balancer in front sends its PROXY header with its first segment; 3 s is generous. */
export const PROXY_HEADER_TIMEOUT_MS = 3000;
/** A TLS client sends its ClientHello right after the TCP handshake. */
export const CLIENT_HELLO_TIMEOUT_MS = 5000;

/** Why the gate refused a client: the counter it bumps, and the access log's reason. */
const REFUSALS = {
  acl: ListenerCounter.refusedAcl,
  max_connections: ListenerCounter.refusedMaxConnections,
  per_ip_connections: ListenerCounter.refusedPerIpConnections,
  per_ip_rate: ListenerCounter.refusedPerIpRate,
  proxy_header: ListenerCounter.refusedProxyHeader,
  proxy_header_timeout: ListenerCounter.refusedProxyTimeout,
  proxy_untrusted: ListenerCounter.refusedProxyUntrusted,
  tls_hello: ListenerCounter.refusedTlsHello,
  tls_hello_timeout: ListenerCounter.refusedTlsTimeout,
  sni_no_route: ListenerCounter.refusedSniNoRoute,
} as const satisfies Partial<Record<TerminationReason, ListenerCounter>>;

type Refusal = keyof typeof REFUSALS;

/** The addresses a PROXY header carried: what the backend is told by send_proxy. */
export interface Origin {
  readonly source: Endpoint;
  readonly destination: Endpoint;
}

/** What an admitted connection holds in the shared limit table until it closes. */
export class AdmissionLease {
  private readonly limits: IpLimitTable | undefined;
  private readonly listenerSlot: number;
  private entry = -1;
  private holdsListener = false;

  constructor(limits: IpLimitTable | undefined, listenerSlot: number) {
    this.limits = limits;
    this.listenerSlot = listenerSlot;
  }

  holdListener(): void {
    this.holdsListener = true;
  }

  holdEntry(entry: number): void {
    this.entry = entry;
  }

  /** Idempotent. */
  release(): void {
    if (this.entry >= 0) this.limits?.releaseIp(this.entry);
    if (this.holdsListener) this.limits?.releaseListener(this.listenerSlot);
    this.entry = -1;
    this.holdsListener = false;
  }
}

/** How the gate hands an admitted connection on (TcpProxy implements it). */
export interface SessionStarter {
  startSession(client: net.Socket, listener: ListenerBinding, route: ClusterRoute | undefined, logged: boolean, admitted: Admitted): void;
  /** The access log line of a refused client (only for a connection the log sampled). */
  logRefused(client: string, listener: ListenerBinding, cluster: string | null, reason: TerminationReason): void;
  /** A connection is waiting for its prelude (counts as open for drain); idempotent. */
  preludeStarted(client: net.Socket): void;
  /** The connection became a session or was closed; idempotent, also for one that never waited. */
  preludeEnded(client: net.Socket): void;
  /** A cluster's route in the current snapshot version (undefined once the cluster is gone). */
  currentRoute(name: string): ClusterRoute | undefined;
  /** Why the proxy itself closed this client during its prelude (destroyAll), if it did. */
  cutReason(client: net.Socket): TerminationReason | undefined;
}

export interface EdgeGateOptions {
  readonly counters: WorkerCounters;
  /** The shared per-IP table; undefined disables limits (tests of other parts). */
  readonly limits: IpLimitTable | undefined;
  /** Ticks (see ip-limits.ts) of a clock shared by every thread. */
  readonly now?: () => number;
  /** Debug line per PROXY header read (the carried client), off at info level. */
  readonly onProxyHeader?: (listener: ListenerBinding, header: ProxyHeader, peer: Endpoint) => void;
  readonly proxyHeaderTimeoutMs?: number;
  readonly clientHelloTimeoutMs?: number;
}

export class EdgeGate {
  private readonly starter: SessionStarter;
  private readonly counters: WorkerCounters;
  private readonly limits: IpLimitTable | undefined;
  private readonly now: () => number;
  private readonly onProxyHeader: EdgeGateOptions['onProxyHeader'];
  private readonly proxyHeaderTimeoutMs: number;
  private readonly clientHelloTimeoutMs: number;
  /** Scratch for the client address; the checks that read it run synchronously. */
  private readonly address = new Int32Array(4);

  constructor(starter: SessionStarter, options: EdgeGateOptions) {
    this.starter = starter;
    this.counters = options.counters;
    this.limits = options.limits;
    this.now = options.now ?? monotonicTicks;
    this.onProxyHeader = options.onProxyHeader;
    this.proxyHeaderTimeoutMs = options.proxyHeaderTimeoutMs ?? PROXY_HEADER_TIMEOUT_MS;
    this.clientHelloTimeoutMs = options.clientHelloTimeoutMs ?? CLIENT_HELLO_TIMEOUT_MS;
  }

  /** Admit and route one accepted (paused) client socket of a listener with edge settings. */
  accept(client: net.Socket, listener: ListenerBinding, route: ListenerRoute | undefined, policy: EdgePolicy, logged: boolean): void {
    const c: Connection = { client, listener, logged, lease: new AdmissionLease(this.limits, listener.slot), origin: undefined, headerBytes: 0 };
    if (policy.maxConnections > 0 && this.limits !== undefined) {
      if (!this.limits.acquireListener(listener.slot, policy.maxConnections)) {
        this.refuse(c, 'max_connections');
        return;
      }
      c.lease.holdListener();
    }
    if (policy.acceptProxy) {
      if (!this.admitProxyPeer(c, policy)) return;
      this.readProxyHeader(c, route, policy);
      return;
    }
    if (!this.admit(c, policy, client.remoteAddress)) return;
    this.route(c, route, policy, undefined);
  }

  private readProxyHeader(c: Connection, route: ListenerRoute | undefined, policy: EdgePolicy): void {
    const client = c.client;
    this.starter.preludeStarted(client);
    readPrelude(client, parseProxyHeader, this.proxyHeaderTimeoutMs, undefined, (outcome: PreludeOutcome<ProxyHeader>) => {
      if (outcome.kind !== 'complete') {
        this.unfinished(c, outcome.kind, 'proxy_header_timeout', 'proxy_header');
        return;
      }
      const header = outcome.value;
      c.headerBytes = outcome.consumed;
      this.onProxyHeader?.(c.listener, header, { address: client.remoteAddress ?? '', port: client.remotePort ?? 0 });
      // LOCAL and address-less headers speak for the peer itself: it is the client.
      const { source, destination } = header;
      if (source !== undefined && destination !== undefined) c.origin = { source, destination };
      if (!this.admit(c, policy, c.origin === undefined ? client.remoteAddress : c.origin.source.address)) return;
      const rest = outcome.bytes.subarray(outcome.consumed);
      this.route(c, route, policy, rest.length > 0 ? rest : undefined);
    });
  }

  /** Whether the peer may name its client in a PROXY header; false when refused (and closed). */
  private admitProxyPeer(c: Connection, policy: EdgePolicy): boolean {
    const trusted = policy.proxyTrusted;
    if (trusted === undefined) return true;
    const peer = c.client.remoteAddress;
    const family = peer === undefined ? 0 : parseIpInto(peer, this.address, { allowZone: true });
    if (family === 0) {
      // Only a socket that is already gone has no address; nothing to count.
      this.close(c);
      return false;
    }
    if (trusted.allows(family, this.address)) return true;
    this.refuse(c, 'proxy_untrusted');
    return false;
  }

  /** The acl and per-IP checks for the client's address; false when refused (and closed). */
  private admit(c: Connection, policy: EdgePolicy, clientAddress: string | undefined): boolean {
    if (policy.acl === undefined && policy.ipLimits === undefined) return true;
    const family = clientAddress === undefined ? 0 : parseIpInto(clientAddress, this.address, { allowZone: true });
    if (family === 0) {
      // Only a socket that is already gone has no address; nothing to count.
      this.close(c);
      return false;
    }
    if (policy.acl !== undefined && !policy.acl.allows(family, this.address)) {
      this.refuse(c, 'acl');
      return false;
    }
    if (policy.ipLimits === undefined || this.limits === undefined) return true;
    const outcome = this.limits.admitIp(c.listener.slot, this.address, this.now(), policy.ipLimits);
    if (outcome >= 0) {
      c.lease.holdEntry(outcome);
      return true;
    }
    switch (outcome) {
      case Admission.refusedPerIpConnections:
        this.refuse(c, 'per_ip_connections');
        return false;
      case Admission.refusedPerIpRate:
        this.refuse(c, 'per_ip_rate');
        return false;
      case Admission.admittedTableFull:
        this.counters.bumpListener(c.listener.slot, ListenerCounter.limitsTableFull);
        return true;
      default:
        return true;
    }
  }

  /**
   * Pick the cluster and start the session: by server name with sni_routes; else (or with
   * no match) by the listener's weighted routes, chosen only now that the client is in.
   */
  private route(c: Connection, listener: ListenerRoute | undefined, policy: EdgePolicy, pending: Buffer | undefined): void {
    const client = c.client;
    const sni = policy.sni;
    if (sni === undefined) {
      if (pending !== undefined) client.unshift(pending);
      this.start(c, listener === undefined ? undefined : chooseCluster(listener));
      return;
    }
    this.starter.preludeStarted(client);
    readPrelude(client, parseClientHello, this.clientHelloTimeoutMs, pending, (outcome: PreludeOutcome<ClientHello>) => {
      if (outcome.kind !== 'complete') {
        this.unfinished(c, outcome.kind, 'tls_hello_timeout', 'tls_hello');
        return;
      }
      const matched = sni.match(outcome.value.serverName);
      const chosen = matched ?? (listener === undefined ? undefined : chooseCluster(listener));
      if (chosen === undefined) {
        this.refuse(c, 'sni_no_route');
        return;
      }
      // Untouched: the backend terminates TLS and must see the very bytes the client sent.
      client.unshift(outcome.bytes);
      this.start(c, chosen);
    });
  }

  /**
   * The session is registered before the prelude is forgotten, so a drain waiting for
   * "no connection left" never sees a gap between the two.
   */
  private start(c: Connection, route: ClusterRoute | undefined): void {
    // A prelude may have taken seconds: route by the current version's backends.
    const current = route === undefined ? undefined : this.starter.currentRoute(route.name);
    this.starter.startSession(c.client, c.listener, current, c.logged, c);
    this.starter.preludeEnded(c.client);
  }

  /**
   * A prelude that did not complete: timed out, malformed, or closed. A client that closes
   * before a whole header is refused as malformed; one the proxy cut (a drain's deadline)
   * is no protocol refusal: it is logged with the drain's reason and not counted.
   */
  private unfinished(c: Connection, kind: 'timeout' | 'invalid' | 'closed', onTimeout: Refusal, otherwise: Refusal): void {
    const cutFor = kind === 'closed' ? this.starter.cutReason(c.client) : undefined;
    if (cutFor === undefined) {
      this.refuse(c, kind === 'timeout' ? onTimeout : otherwise);
      return;
    }
    if (c.logged) this.starter.logRefused(clientText(c.client, c.origin), c.listener, null, cutFor);
    this.close(c);
  }

  private refuse(c: Connection, reason: Refusal): void {
    this.counters.bumpListener(c.listener.slot, REFUSALS[reason]);
    if (c.logged) this.starter.logRefused(clientText(c.client, c.origin), c.listener, null, reason);
    this.close(c);
  }

  private close(c: Connection): void {
    c.lease.release();
    c.client.on('error', ignoreError);
    c.client.destroy();
    this.starter.preludeEnded(c.client);
  }
}

/** What the gate holds and learned for a client it let through, handed to its session. */
export interface Admitted {
  /** Counts held in the shared limit table, given back when the connection closes. */
  readonly lease: AdmissionLease;
  /** The client as a PROXY header in front of Sluice named it; undefined without one. */
  readonly origin: Origin | undefined;
  /** The PROXY header's length: read from the client, never forwarded to a backend. */
  readonly headerBytes: number;
}

/** One connection on its way through the gate. */
interface Connection extends Admitted {
  readonly client: net.Socket;
  readonly listener: ListenerBinding;
  /** The access log sampled it at accept. */
  readonly logged: boolean;
  origin: Origin | undefined;
  headerBytes: number;
}

/** The client as the access log names it: the one a PROXY header carried, else the peer. */
export function clientText(client: Pick<net.Socket, 'remoteAddress' | 'remotePort'>, origin: Origin | undefined): string {
  if (origin !== undefined) return formatHostPort(origin.source.address, origin.source.port);
  const host = client.remoteAddress;
  return host === undefined ? 'unknown' : formatHostPort(host, client.remotePort ?? 0);
}

function ignoreError(): void {
  // The socket is being torn down; its error has nowhere useful to go.
}

const TICKS_PER_MS = TICKS_PER_SECOND / 1000;

/**
 * The per-IP table's time: the monotonic clock every thread agrees on (shared-clock.ts), in
 * ticks. Ticks wrap at 2^32; ip-limits.ts compares them with wrapping arithmetic.
 */
export function monotonicTicks(): number {
  return (sharedMonotonicMs() * TICKS_PER_MS) | 0;
}
