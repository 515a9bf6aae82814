/**
 * A session's accepted client, on either data path: `NetClient` (the net.Socket that
 * net.Server made: the net path, and listeners with edge settings on both paths, whose gate
 * reads preludes through the stream API) or `HandleClient` (a libuv stream handle taken at
 * accept, stream-handle.ts: plain listeners on the handles path). The session sees one
 * interface and one set of events, as it does for the backend (backend-link.ts).
 *
 * Back-pressure: the client's bytes go to `owner.backend.write`; when that reports the
 * backend full, the client is paused until the backend link resumes it. Bytes from the
 * backend come in through `write`; when it reports the client full, the backend link stops
 * reading until the client drained, which the client reports as `owner.backend.resumeReading`.
 *
 * Every event reaches the session through module-level functions and a field on the socket,
 * or through the owner interface of the stream: no closures per connection.
 */
import type net from 'node:net';
import { forwardFin, resetSocket, type BackendLink } from './backend-link.ts';
import { nextBufferFor, sharedReadBuffer, writeRead, type ByteSink, type ReadBufferHolder } from './read-buffers.ts';
import { TcpStream, WriteResult, type StreamOwner } from './stream-handle.ts';

/** What a client tells its session (TcpSession implements it). */
export interface ClientOwner {
  readonly backend: BackendLink | undefined;
  clientEnded(): void;
  /** A read or write on the client failed (errno name when known). */
  clientFailed(code: string | undefined): void;
  clientSocketClosed(hadError: boolean): void;
}

/** What a backend link writes the backend's bytes to, and resumes once the backend drained. */
export interface ClientSide extends ByteSink {
  resume(): void;
}

export interface ClientLink extends ClientSide {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  /** Bytes read from and written to the client so far (the sweep and the access log count them). */
  readonly bytesRead: number;
  readonly bytesWritten: number;
  /** Report the client's end, failure and close to `owner` from now on. */
  attach(owner: ClientOwner): void;
  /** The backend is connected: read the client and pass its bytes to `owner.backend`. */
  startRelay(): void;
  /** Pass the backend's FIN on, after the bytes already written. */
  forwardFin(): void;
  destroy(): void;
  /** Close with a reset (SO_LINGER 0), so the client cannot take a cut reply for a whole one. */
  reset(): void;
}

// ---------------------------------------------------------------------------------------
// net.Socket

const kClient = Symbol('sluice.client');

interface ClientSocket extends net.Socket {
  [kClient]: NetClient;
}

function clientOf(socket: net.Socket): NetClient {
  return (socket as ClientSocket)[kClient];
}

export class NetClient implements ClientLink {
  readonly socket: net.Socket;
  owner: ClientOwner | undefined;

  constructor(socket: net.Socket) {
    this.socket = socket;
    (socket as ClientSocket)[kClient] = this;
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }

  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }

  get localPort(): number | undefined {
    return this.socket.localPort;
  }

  get bytesRead(): number {
    return this.socket.bytesRead;
  }

  get bytesWritten(): number {
    return this.socket.bytesWritten;
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  attach(owner: ClientOwner): void {
    this.owner = owner;
    const socket = this.socket;
    socket.on('error', onNetClientError);
    socket.on('end', onNetClientEnd);
    socket.on('close', onNetClientClose);
  }

  startRelay(): void {
    const socket = this.socket;
    socket.on('data', onNetClientData);
    socket.on('drain', onNetClientDrain);
    socket.resume();
  }

  write(chunk: Buffer): boolean {
    return this.socket.write(chunk);
  }

  resume(): void {
    this.socket.resume();
  }

  forwardFin(): void {
    forwardFin(this.socket);
  }

  destroy(): void {
    this.socket.destroy();
  }

  reset(): void {
    resetSocket(this.socket);
  }
}

function onNetClientEnd(this: net.Socket): void {
  clientOf(this).owner?.clientEnded();
}

function onNetClientError(this: net.Socket, error: NodeJS.ErrnoException): void {
  clientOf(this).owner?.clientFailed(error.code);
}

function onNetClientClose(this: net.Socket, hadError: boolean): void {
  clientOf(this).owner?.clientSocketClosed(hadError);
}

function onNetClientData(this: net.Socket, chunk: Buffer): void {
  const backend = clientOf(this).owner?.backend;
  if (backend !== undefined && !backend.write(chunk)) this.pause();
}

function onNetClientDrain(this: net.Socket): void {
  clientOf(this).owner?.backend?.resumeReading();
}

// ---------------------------------------------------------------------------------------
// libuv stream handle

/**
 * Reads land in the buffers of read-buffers.ts, by the backend side's rules: the worker's
 * shared buffer, copied out for a partial read, and a buffer of the client's own while reads
 * fill it (a bulk upload), written without a copy and replaced when a write keeps it.
 * Bytes counts are kept here (a handle has none).
 */
export class HandleClient implements ClientLink, StreamOwner, ReadBufferHolder {
  private readonly stream: TcpStream;
  private owner: ClientOwner | undefined;
  private relaying = false;
  ownReadBuffer: Buffer<ArrayBuffer> | undefined;
  bytesRead = 0;
  bytesWritten = 0;

  constructor(stream: TcpStream) {
    this.stream = stream;
    stream.owner = this;
    stream.noDelay();
  }

  get remoteAddress(): string | undefined {
    return this.stream.peer()?.address;
  }

  get remotePort(): number | undefined {
    return this.stream.peer()?.port;
  }

  get localAddress(): string | undefined {
    return this.stream.local()?.address;
  }

  get localPort(): number | undefined {
    return this.stream.local()?.port;
  }

  get writableLength(): number {
    return this.stream.pendingBytes;
  }

  // ClientLink

  attach(owner: ClientOwner): void {
    this.owner = owner;
  }

  startRelay(): void {
    this.relaying = true;
    this.stream.readStart(sharedReadBuffer);
  }

  /** Returns false while bytes are pending: the backend stops reading until `writeDone`. */
  write(chunk: Buffer): boolean {
    this.bytesWritten += chunk.length;
    return this.stream.write(chunk) !== WriteResult.pending;
  }

  resume(): void {
    if (this.relaying) this.stream.readStart(sharedReadBuffer);
  }

  forwardFin(): void {
    this.stream.forwardFin();
  }

  destroy(): void {
    this.stream.close();
  }

  reset(): void {
    this.stream.reset();
  }

  // StreamOwner

  connected(): void {
    // An accepted stream is connected from the start.
  }

  connectFailed(): void {
    // An accepted stream makes no connect.
  }

  read(stream: TcpStream, buffer: Buffer, bytes: number): Buffer {
    this.bytesRead += bytes;
    const backend = this.owner?.backend;
    if (backend !== undefined && !writeRead(this, backend, buffer, bytes)) stream.readStop();
    return nextBufferFor(this, buffer, bytes);
  }

  ended(): void {
    this.owner?.clientEnded();
  }

  failed(_stream: TcpStream, code: string): void {
    this.owner?.clientFailed(code);
  }

  writeDone(): void {
    if (!this.stream.writing) this.owner?.backend?.resumeReading();
  }

  closed(_stream: TcpStream, hadError: boolean): void {
    this.owner?.clientSocketClosed(hadError);
  }
}
