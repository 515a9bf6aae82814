/**
 * One client's UDP session: its backend, and the socket connected to that backend that
 * carries the client's datagrams out and the backend's replies back (to the owning proxy,
 * which sends them to the client from the listener's address).
 *
 * A connected socket only receives from its backend's address, and reports an ICMP
 * port-unreachable from it as ECONNREFUSED, which is what makes per-session sockets the
 * way to tell replies apart by client and to see a backend go away.
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import type { UdpListenerSettings } from '../shared/messages.ts';
import type { SnapshotBackend } from '../shared/snapshot/types.ts';
import type { ClusterRoute, ListenerRoute } from './routing-table.ts';
import { literalLookup } from './udp-lookup.ts';
import type { SessionNode } from './udp-session-table.ts';

/** Datagrams held while a backend host name resolves (IP literals never wait). */
const MAX_PENDING_DATAGRAMS = 16;

/** What a session reports to the proxy that owns it. */
export interface SessionOwner {
  /** A datagram from the backend, to pass to the client. */
  reply(session: UdpSession, datagram: Buffer): void;
  /** ICMP port unreachable from the backend. */
  refused(session: UdpSession): void;
  /** The socket could not be set up, or the backend's name did not resolve. */
  failed(session: UdpSession, backendAtFault: boolean): void;
}

/** One client's session: its backend and the connected socket that reaches it. */
export class UdpSession implements SessionNode {
  readonly key: string;
  lastActive = 0;
  older: SessionNode | undefined = undefined;
  newer: SessionNode | undefined = undefined;
  inTable = false;

  readonly clientAddress: string;
  readonly clientPort: number;
  readonly backend: SnapshotBackend;
  /** Its cluster's route in the version it was last checked against. */
  route: ClusterRoute;
  /** The listener route it was last checked against (a new object per snapshot version). */
  seen: ListenerRoute | undefined = undefined;
  replies = 0;
  answered = false;
  /** Whether the access log gets a line when this session ends (sampled at creation). */
  logged = false;
  /** When the session began (ms, the proxy's monotonic clock). */
  createdAt = 0;
  bytesFromClient = 0;
  bytesToClient = 0;
  refused = false;
  closed = false;
  private readonly proxy: SessionOwner;
  private socket: dgram.Socket | undefined;
  /** Datagrams waiting for a backend host name to resolve; undefined once connected. */
  private pending: Buffer[] | undefined;

  constructor(proxy: SessionOwner, key: string, clientAddress: string, clientPort: number, route: ClusterRoute, backend: SnapshotBackend) {
    this.proxy = proxy;
    this.key = key;
    this.clientAddress = clientAddress;
    this.clientPort = clientPort;
    this.route = route;
    this.backend = backend;
  }

  connect(settings: UdpListenerSettings): void {
    const { host, port } = this.backend;
    const family = isIP(host);
    const socket = dgram.createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      lookup: literalLookup,
      recvBufferSize: settings.recvBufferBytes,
      sendBufferSize: settings.sendBufferBytes,
    });
    this.socket = socket;
    socket.on('message', this.onBackendDatagram);
    socket.on('error', this.onError);
    // An IP literal connects synchronously (see literalLookup); a host name resolves first.
    if (family === 0) {
      this.pending = [];
      socket.once('connect', this.onConnect);
    }
    try {
      socket.connect(port, host);
    } catch {
      // Setting the configured buffer sizes (done by dgram at the implicit bind) can throw.
      this.proxy.failed(this, false);
    }
  }

  /** False when the datagram had to be dropped (bounded queue full, or the session is gone). */
  send(datagram: Buffer, queueLimitBytes: number): boolean {
    const socket = this.socket;
    if (socket === undefined || this.closed) return false;
    const pending = this.pending;
    if (pending !== undefined) {
      if (pending.length >= MAX_PENDING_DATAGRAMS) return false;
      pending.push(datagram);
      return true;
    }
    if (socket.getSendQueueSize() + datagram.length > queueLimitBytes) return false;
    socket.send(datagram);
    return true;
  }

  closeSocket(): void {
    const socket = this.socket;
    this.socket = undefined;
    this.pending = undefined;
    if (socket === undefined) return;
    socket.removeAllListeners();
    socket.on('error', ignoreError);
    try {
      socket.close();
    } catch {
      // Already closed by a failed bind: nothing left to release.
    }
  }

  private readonly onConnect = (): void => {
    const pending = this.pending;
    this.pending = undefined;
    if (pending === undefined || this.closed) return;
    for (const datagram of pending) this.socket?.send(datagram);
  };

  private readonly onBackendDatagram = (datagram: Buffer): void => {
    this.proxy.reply(this, datagram);
  };

  private readonly onError = (error: NodeJS.ErrnoException): void => {
    if (this.closed) return;
    if (error.code === 'ECONNREFUSED') {
      this.proxy.refused(this);
      return;
    }
    // bind (EMFILE, ENOBUFS) is ours; connect and name resolution failures are the backend's.
    this.proxy.failed(this, error.syscall !== 'bind');
  };
}

function ignoreError(): void {
  // The socket is being torn down; its error has nowhere useful to go.
}
