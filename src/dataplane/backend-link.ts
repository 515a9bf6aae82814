/**
 * A session's connection to its backend, on either data path: `NetBackend` (net.Socket) or
 * `HandleBackend` (a libuv stream handle, stream-handle.ts). The session sees one interface
 * and one set of events, so connect timeout, retry, half-close, back-pressure and resets are
 * decided once, in tcp-session.ts, whatever carries the bytes.
 *
 * Both directions' back-pressure meet here: bytes from the client go to `write`, which
 * reports the backend full (the client pauses) and resumes the client once they are taken;
 * bytes from the backend are written to the client, and reading the backend stops while the
 * client is full until the client calls `resumeReading` (its 'drain').
 *
 * Every event reaches the session through module-level functions and a field on the socket
 * or stream: no closures per connection.
 */
import net from 'node:net';
import type { ClientSide } from './client-link.ts';
import type { DataPath } from './data-path.ts';
import { nextBufferFor, relayRead, sharedReadBuffer, takeNextReadBuffer, writeRead, type ByteSink, type ReadBufferHolder } from './read-buffers.ts';
import { TcpStream, WriteResult, type StreamOwner } from './stream-handle.ts';

/** What a backend connection tells its session. */
export interface LinkOwner {
  readonly client: ClientSide;
  backendConnected(): void;
  /** The connect did not complete within the connect timeout. */
  backendTimedOut(): void;
  /** A connect or a connected backend failed (errno name when known). */
  backendFailed(code: string | undefined): void;
  /** The backend sent its FIN. */
  backendEnded(): void;
  /** The backend connection is closed (not after `abandon`). */
  backendClosed(hadError: boolean): void;
  /** An abandoned attempt finished closing. */
  abandonedClosed(): void;
}

export interface BackendLink extends ByteSink {
  /**
   * Bytes from the client (or a PROXY header); false when the backend is full: the caller
   * pauses the client, and the link resumes it once the bytes are taken.
   */
  write(chunk: Buffer): boolean;
  /** Pass the client's FIN on, after the bytes already written. */
  forwardFin(): void;
  /** The client drained: read the backend again. */
  resumeReading(): void;
  destroy(): void;
  /** Close with a reset, so the backend cannot take a cut request for a whole one. */
  reset(): void;
  /** Drop a failed or outdated attempt: its close is reported as `abandonedClosed`. */
  abandon(): void;
}

/** Open a connection to `host:port` for `owner`, on `path` (net for a host that is no literal address). */
export function connectBackend(path: DataPath, host: string, port: number, connectTimeoutMs: number, owner: LinkOwner): BackendLink {
  if (path === 'handles' && TcpStream.canConnect(host)) return new HandleBackend(host, port, connectTimeoutMs, owner);
  return new NetBackend(host, port, connectTimeoutMs, owner);
}

// ---------------------------------------------------------------------------------------
// net.Socket

const kLink = Symbol('sluice.link');

interface LinkSocket extends net.Socket {
  [kLink]: NetBackend;
}

function linkOf(socket: net.Socket): NetBackend {
  return (socket as LinkSocket)[kLink];
}

class NetBackend implements BackendLink, ReadBufferHolder {
  readonly owner: LinkOwner;
  private readonly socket: LinkSocket;
  /** The socket's own read buffer while it streams in bulk (read-buffers.ts). */
  ownReadBuffer: Buffer<ArrayBuffer> | undefined;

  constructor(host: string, port: number, connectTimeoutMs: number, owner: LinkOwner) {
    this.owner = owner;
    const socket = net.connect({ host, port, allowHalfOpen: true, noDelay: true, onread: BACKEND_ONREAD }) as LinkSocket;
    socket[kLink] = this;
    this.socket = socket;
    socket.setTimeout(connectTimeoutMs);
    socket.once('connect', onNetConnect);
    socket.on('timeout', onNetTimeout);
    socket.on('error', onNetError);
    socket.on('close', onNetClose);
  }

  connected(): void {
    // From here idle time is the session's sweep's business; the connect timer is done.
    this.socket.setTimeout(0);
    this.socket.on('end', onNetEnd);
    this.socket.on('drain', onNetDrain);
    this.owner.backendConnected();
  }

  write(chunk: Buffer): boolean {
    return this.socket.write(chunk);
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  /**
   * When the backend already sent its FIN and every byte we wrote is with the kernel,
   * closing the socket sends the FIN and frees it in one step (close() on a socket with
   * nothing unread is a graceful FIN, not a reset); otherwise `end()` shuts down our
   * direction after the queued bytes and keeps reading.
   */
  forwardFin(): void {
    forwardFin(this.socket);
  }

  resumeReading(): void {
    this.socket.resume();
  }

  destroy(): void {
    this.socket.destroy();
  }

  reset(): void {
    resetSocket(this.socket);
  }

  abandon(): void {
    const socket = this.socket;
    socket.removeAllListeners();
    socket.on('error', ignoreError);
    socket.once('close', onNetAbandonedClose);
    socket.destroy();
  }
}

/** Forward a FIN to a net socket, client's or backend's (see NetBackend.forwardFin). */
export function forwardFin(socket: net.Socket): void {
  if (socket.readableEnded && socket.writableLength === 0) socket.destroy();
  else socket.end();
}

/** Close a net socket with a reset, client's or backend's. */
export function resetSocket(socket: net.Socket): void {
  // resetAndDestroy on a closed socket raises ERR_SOCKET_CLOSED; it has nothing to pass on.
  if (!socket.destroyed) socket.resetAndDestroy();
}

export function ignoreError(): void {
  // The socket is being torn down; its error has nowhere useful to go.
}

function onNetConnect(this: net.Socket): void {
  linkOf(this).connected();
}

function onNetTimeout(this: net.Socket): void {
  linkOf(this).owner.backendTimedOut();
}

function onNetError(this: net.Socket, error: NodeJS.ErrnoException): void {
  linkOf(this).owner.backendFailed(error.code);
}

function onNetClose(this: net.Socket, hadError: boolean): void {
  linkOf(this).owner.backendClosed(hadError);
}

function onNetAbandonedClose(this: net.Socket): void {
  linkOf(this).owner.abandonedClosed();
}

function onNetEnd(this: net.Socket): void {
  linkOf(this).owner.backendEnded();
}

function onNetDrain(this: net.Socket): void {
  linkOf(this).owner.client.resume();
}

const BACKEND_ONREAD = { buffer: takeNextReadBuffer, callback: onNetRead };

/** `onread` callback of a backend socket; returning false pauses it until the client drains. */
function onNetRead(this: net.Socket, bytes: number, buffer: Uint8Array): boolean {
  const link = linkOf(this);
  return relayRead(link, link.owner.client, buffer, bytes);
}

// ---------------------------------------------------------------------------------------
// libuv stream handle

/** Reads land in the buffers of read-buffers.ts, chosen by the same rules as on the net path. */
class HandleBackend implements BackendLink, StreamOwner, ReadBufferHolder {
  private readonly owner: LinkOwner;
  private readonly stream: TcpStream;
  private connectTimer: NodeJS.Timeout | undefined;
  private abandoned = false;
  /** The stream's own read buffer while it streams in bulk (read-buffers.ts). */
  ownReadBuffer: Buffer<ArrayBuffer> | undefined;

  constructor(host: string, port: number, connectTimeoutMs: number, owner: LinkOwner) {
    this.owner = owner;
    this.stream = TcpStream.connect(host, port, this);
    this.connectTimer = setTimeout(onHandleConnectTimeout, connectTimeoutMs, this);
  }

  connectTimedOut(): void {
    this.connectTimer = undefined;
    this.owner.backendTimedOut();
  }

  // StreamOwner

  connected(): void {
    this.clearConnectTimer();
    this.owner.backendConnected();
    this.stream.readStart(sharedReadBuffer);
  }

  connectFailed(_stream: TcpStream, code: string): void {
    this.clearConnectTimer();
    this.owner.backendFailed(code);
  }

  read(stream: TcpStream, buffer: Buffer, bytes: number): Buffer {
    if (!writeRead(this, this.owner.client, buffer, bytes)) stream.readStop();
    return nextBufferFor(this, buffer, bytes);
  }

  ended(): void {
    this.owner.backendEnded();
  }

  failed(_stream: TcpStream, code: string): void {
    this.owner.backendFailed(code);
  }

  writeDone(): void {
    if (!this.stream.writing) this.owner.client.resume();
  }

  closed(_stream: TcpStream, hadError: boolean): void {
    this.clearConnectTimer();
    if (this.abandoned) this.owner.abandonedClosed();
    else this.owner.backendClosed(hadError);
  }

  // BackendLink

  write(chunk: Buffer): boolean {
    return this.stream.write(chunk) !== WriteResult.pending;
  }

  get writableLength(): number {
    return this.stream.pendingBytes;
  }

  forwardFin(): void {
    this.stream.forwardFin();
  }

  resumeReading(): void {
    this.stream.readStart(sharedReadBuffer);
  }

  destroy(): void {
    this.stream.close();
  }

  reset(): void {
    this.stream.reset();
  }

  abandon(): void {
    this.abandoned = true;
    this.clearConnectTimer();
    this.stream.close();
  }

  private clearConnectTimer(): void {
    if (this.connectTimer === undefined) return;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
  }
}

function onHandleConnectTimeout(link: HandleBackend): void {
  link.connectTimedOut();
}
