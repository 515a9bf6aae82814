/**
 * One client's UDP session: its backend, and the backend socket it holds for its lifetime
 * (udp-backend-socket.ts), which carries the client's datagrams out and the backend's replies
 * back to the owning proxy, which sends them to the client from the listener's address.
 * The socket is new, or lent by the listener's pool; at the end the proxy takes it back.
 */
import type { SnapshotBackend } from '../shared/snapshot/types.ts';
import type { BackendSocket, SocketHolder } from './udp-backend-socket.ts';
import type { ClusterRoute, ListenerRoute } from './routing-table.ts';
import type { SessionNode } from './udp-session-table.ts';
import type { ClientId } from './udp-client-id.ts';

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
export class UdpSession implements SessionNode, SocketHolder {
  readonly key: string;
  readonly id: ClientId;
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
  private socket: BackendSocket | undefined;

  constructor(proxy: SessionOwner, id: ClientId, key: string, clientAddress: string, clientPort: number, route: ClusterRoute, backend: SnapshotBackend) {
    this.proxy = proxy;
    this.id = id;
    this.key = key;
    this.clientAddress = clientAddress;
    this.clientPort = clientPort;
    this.route = route;
    this.backend = backend;
  }

  /** Take `socket` for this session's lifetime: its datagrams come here from now on. */
  attach(socket: BackendSocket): void {
    this.socket = socket;
    socket.hold(this);
  }

  /** Let go of the socket (its datagrams no longer reach this session) and hand it to the caller. */
  detach(): BackendSocket | undefined {
    const socket = this.socket;
    this.socket = undefined;
    socket?.release();
    return socket;
  }

  /** False when the datagram had to be dropped (bounded queue full, or the session is gone). */
  send(datagram: Buffer, queueLimitBytes: number): boolean {
    const socket = this.socket;
    if (socket === undefined || this.closed) return false;
    return socket.send(datagram, queueLimitBytes);
  }

  backendDatagram(datagram: Buffer): void {
    this.proxy.reply(this, datagram);
  }

  backendRefused(): void {
    if (!this.closed) this.proxy.refused(this);
  }

  backendFailed(backendAtFault: boolean): void {
    if (!this.closed) this.proxy.failed(this, backendAtFault);
  }
}
