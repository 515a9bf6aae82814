/**
 * A UDP socket bound and connected to one backend, held by one session at a time. A session
 * that ended at its last reply hands it back to the listener's pool (udp-socket-pool.ts), and
 * the next session to that backend takes it instead of creating, binding and connecting one.
 *
 * A connected socket only receives from its backend's address, and reports an ICMP
 * port-unreachable from it as ECONNREFUSED, which is what makes a socket per open session the
 * way to tell replies apart by client and to see a backend go away.
 *
 * What must stay true (the reason reuse cannot misroute a reply it can foresee):
 * - a datagram reaches a session only while that session holds the socket; one that arrives
 *   while nobody does is dropped and reported (`stray`);
 * - `sent` and `received` count the current holder's datagrams each way, and keep counting
 *   after it let go, so the pool can wait until every datagram it sent was answered
 *   (`settled`) before lending the socket to another client;
 * - once `broken` (refused, failed), a socket is never lent again.
 * A backend that answers one request more than once can still put its extra answer on the
 * next client's lease if it arrives after the first answer settled the socket: the pool is
 * for request-reply backends (it is used only when `max_replies` ends sessions).
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import type { UdpListenerSettings } from '../shared/messages.ts';
import type { SnapshotBackend } from '../shared/snapshot/types.ts';
import { literalLookup } from './udp-lookup.ts';

/** Datagrams held while a backend host name resolves (IP literals never wait). */
const MAX_PENDING_DATAGRAMS = 16;

/** The session holding the socket. */
export interface SocketHolder {
  backendDatagram(datagram: Buffer): void;
  /** ICMP port unreachable from the backend. */
  backendRefused(): void;
  /** The socket could not be set up, or the backend's name did not resolve. */
  backendFailed(backendAtFault: boolean): void;
}

/** What a socket reports while no session holds it. */
export interface IdleSocketEvents {
  /** A datagram arrived for a session that has ended: it was dropped. */
  stray(socket: BackendSocket): void;
  /** A socket waiting for replies (`settling`) got the last one it was owed. */
  settled(socket: BackendSocket): void;
}

export class BackendSocket {
  readonly slot: number;
  readonly backendId: string;
  holder: SocketHolder | undefined = undefined;
  /** Datagrams sent and received since the current (or last) holder took the socket. */
  sent = 0;
  received = 0;
  /** Released while owed replies: the pool waits for them before lending it again. */
  settling = false;
  /** Refused, failed, or closed: never to be lent again. */
  broken = false;
  private readonly backend: SnapshotBackend;
  private readonly events: IdleSocketEvents;
  private socket: dgram.Socket | undefined;
  /** Datagrams waiting for a backend host name to resolve; undefined once connected. */
  private pending: Buffer[] | undefined;

  constructor(backend: SnapshotBackend, events: IdleSocketEvents) {
    this.backend = backend;
    this.slot = backend.slot;
    this.backendId = backend.id;
    this.events = events;
  }

  /** Replies still owed to the datagrams sent under the current or last holder. */
  get outstanding(): number {
    return this.sent - this.received;
  }

  /** Connected (a host name resolved, or an IP literal), so a datagram leaves at once. */
  get ready(): boolean {
    return this.socket !== undefined && this.pending === undefined;
  }

  hold(holder: SocketHolder): void {
    this.holder = holder;
    this.sent = 0;
    this.received = 0;
    this.settling = false;
  }

  release(): void {
    this.holder = undefined;
  }

  /** Create, bind and connect; a synchronous failure is reported to the holder. */
  open(settings: UdpListenerSettings): void {
    const { host, port } = this.backend;
    const family = isIP(host);
    const socket = dgram.createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      lookup: literalLookup,
      recvBufferSize: settings.recvBufferBytes,
      sendBufferSize: settings.sendBufferBytes,
    });
    this.socket = socket;
    socket.on('message', this.onDatagram);
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
      this.broken = true;
      this.holder?.backendFailed(false);
    }
  }

  /** False when the datagram had to be dropped (bounded queue full, or the socket is gone). */
  send(datagram: Buffer, queueLimitBytes: number): boolean {
    const socket = this.socket;
    if (socket === undefined) return false;
    const pending = this.pending;
    if (pending !== undefined) {
      if (pending.length >= MAX_PENDING_DATAGRAMS) return false;
      pending.push(datagram);
      this.sent++;
      return true;
    }
    if (socket.getSendQueueSize() + datagram.length > queueLimitBytes) return false;
    socket.send(datagram);
    this.sent++;
    return true;
  }

  close(): void {
    const socket = this.socket;
    this.socket = undefined;
    this.pending = undefined;
    this.holder = undefined;
    this.broken = true;
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
    if (pending === undefined) return;
    for (const datagram of pending) this.socket?.send(datagram);
  };

  private readonly onDatagram = (datagram: Buffer): void => {
    this.received++;
    const holder = this.holder;
    if (holder !== undefined) {
      holder.backendDatagram(datagram);
      return;
    }
    this.events.stray(this);
    if (this.settling && this.received >= this.sent) this.events.settled(this);
  };

  private readonly onError = (error: NodeJS.ErrnoException): void => {
    this.broken = true;
    const holder = this.holder;
    if (holder === undefined) return;
    if (error.code === 'ECONNREFUSED') {
      holder.backendRefused();
      return;
    }
    // bind (EMFILE, ENOBUFS) is ours; connect and name resolution failures are the backend's.
    holder.backendFailed(error.syscall !== 'bind');
  };
}

function ignoreError(): void {
  // The socket is being torn down; its error has nowhere useful to go.
}
