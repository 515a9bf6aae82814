/**
 * TCP streams on Node's libuv stream handles (process.binding('tcp_wrap') and
 * ('stream_wrap')), below net.Socket. The only module that touches those internal bindings:
 * everything else sees `TcpStream` and its owner interface.
 *
 * Why: net.Socket is a Duplex stream with its state machines, listeners and buffering; for a
 * relay that only moves bytes from one kernel socket to another most of that is cost (issue
 * #18: a relay on these handles measured ~25% less CPU per new connection than net.Socket).
 *
 * What must stay true:
 * - `bindingProblem()` is asked once at start-up; the handle path is used only when it says
 *   nothing is missing (the bindings are internal and may change in any Node release);
 * - a write whose bytes are still pending keeps a reference to them (its WriteWrap) until
 *   libuv calls back; the owner stops feeding the stream until `writeDone`;
 * - reads land in a buffer the owner gives (`useUserBuffer` at the first readStart, then
 *   what `read` returns: the handle's read listener takes a returned buffer as the next
 *   read's, as net's `onread.buffer` does); the stream keeps a reference to it, since the
 *   native side holds only its address;
 * - every callback reaches the owner through a module-level function and a field on the
 *   handle, so a stream allocates no closures; after `close`/`reset` no callback but `closed`
 *   reaches the owner.
 * - accepting (`acceptStreams`) keeps net.Server for listen, SO_REUSEPORT and close: only its
 *   listening handle's `onconnection` is taken over, and a connection the caller does not
 *   take as a stream goes to net's own handler, which makes the net.Socket as before.
 */
import type net from 'node:net';
import { isIPv4, isIPv6 } from 'node:net';
import { getSystemErrorName } from 'node:util';

/** What a stream tells its owner; each gets the stream, so one owner object can own several. */
export interface StreamOwner {
  connected(stream: TcpStream): void;
  /** The connect failed (errno name, e.g. ECONNREFUSED). */
  connectFailed(stream: TcpStream, code: string): void;
  /**
   * `bytes` (> 0) arrived in `buffer`; returns the buffer of the next read (which may be
   * `buffer` again if its bytes were copied or written).
   */
  read(stream: TcpStream, buffer: Buffer, bytes: number): Buffer;
  /** The peer sent its FIN. */
  ended(stream: TcpStream): void;
  /** A read, write or shutdown failed (errno name). */
  failed(stream: TcpStream, code: string): void;
  /** The write that `write` reported pending completed. */
  writeDone(stream: TcpStream): void;
  /** The handle is closed; nothing more will be called. */
  closed(stream: TcpStream, hadError: boolean): void;
}

interface WriteReq {
  handle: TcpHandle;
  oncomplete: (this: WriteReq, status: number) => void;
  buffer: Buffer | undefined;
}
interface ShutdownReq {
  handle: TcpHandle;
  oncomplete: (this: ShutdownReq, status: number) => void;
}
interface ConnectReq {
  oncomplete: (this: ConnectReq, status: number, handle: TcpHandle) => void;
}
interface TcpHandle {
  connect(req: ConnectReq, address: string, port: number): number;
  connect6(req: ConnectReq, address: string, port: number): number;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: WriteReq, data: Buffer): number;
  shutdown(req: ShutdownReq): number;
  useUserBuffer(buffer: Uint8Array): void;
  setNoDelay(enable: boolean): number;
  getpeername(out: Partial<Endpoint>): number;
  getsockname(out: Partial<Endpoint>): number;
  close(callback: (this: TcpHandle) => void): void;
  reset(callback: (this: TcpHandle) => void): number;
  onread: ((this: TcpHandle) => Buffer | undefined) | undefined;
  [kStream]?: TcpStream | undefined;
}
/** A listening TCP handle (net.Server's `_handle`): libuv calls `onconnection` per accept. */
interface ServerHandle {
  onconnection: (this: ServerHandle, status: number, client: TcpHandle | undefined) => void;
}
/** An address as getpeername/getsockname fill it in. */
export interface Endpoint {
  address: string;
  port: number;
  family: string;
}
interface TcpWrapBinding {
  TCP: new (type: number) => TcpHandle;
  TCPConnectWrap: new () => ConnectReq;
  constants: { SOCKET: number };
}
interface StreamWrapBinding {
  WriteWrap: new () => WriteReq;
  ShutdownWrap: new () => ShutdownReq;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
}

const kStream = Symbol('sluice.stream');
/** libuv's UV_EOF. */
const UV_EOF = -4095;

const HANDLE_METHODS = [
  'connect', 'connect6', 'readStart', 'readStop', 'writeBuffer', 'shutdown', 'useUserBuffer', 'setNoDelay',
  'getpeername', 'getsockname', 'close', 'reset',
] as const;

let tcpWrap: TcpWrapBinding | undefined;
let streamWrap: StreamWrapBinding | undefined;

/**
 * Undefined when every binding, class, method and constant the handle path uses exists in
 * this Node; else what is missing (logged once, and the net.Socket path runs instead).
 */
export function bindingProblem(): string | undefined {
  if (tcpWrap !== undefined) return undefined;
  let tcp: Partial<TcpWrapBinding>;
  let stream: Partial<StreamWrapBinding>;
  try {
    // process.binding is deprecated for user code but still the door to these handles in Node 24.
    const binding = (process as unknown as { binding: (name: string) => unknown }).binding;
    tcp = binding('tcp_wrap') as Partial<TcpWrapBinding>;
    stream = binding('stream_wrap') as Partial<StreamWrapBinding>;
  } catch (error) {
    return `process.binding failed: ${(error as Error).message}`;
  }
  if (typeof tcp.TCP !== 'function') return "tcp_wrap has no TCP";
  if (typeof tcp.TCPConnectWrap !== 'function') return 'tcp_wrap has no TCPConnectWrap';
  if (typeof tcp.constants?.SOCKET !== 'number') return 'tcp_wrap has no constants.SOCKET';
  if (typeof stream.WriteWrap !== 'function') return 'stream_wrap has no WriteWrap';
  if (typeof stream.ShutdownWrap !== 'function') return 'stream_wrap has no ShutdownWrap';
  if (!(stream.streamBaseState instanceof Int32Array)) return 'stream_wrap has no streamBaseState';
  for (const name of ['kReadBytesOrError', 'kLastWriteWasAsync'] as const) {
    const index = stream[name];
    if (typeof index !== 'number' || index < 0 || index >= stream.streamBaseState.length) return `stream_wrap has no ${name}`;
  }
  const proto = tcp.TCP.prototype as Record<string, unknown>;
  for (const method of HANDLE_METHODS) {
    if (typeof proto[method] !== 'function') return `TCP handles have no ${method}()`;
  }
  tcpWrap = tcp as TcpWrapBinding;
  streamWrap = stream as StreamWrapBinding;
  return undefined;
}

function bindings(): { tcp: TcpWrapBinding; stream: StreamWrapBinding } {
  if (tcpWrap === undefined || streamWrap === undefined) throw new Error('stream handles used without a passing bindingProblem() check');
  return { tcp: tcpWrap, stream: streamWrap };
}



/** Outcome of `write`: done (the kernel took every byte), pending (wait for writeDone), or failed. */
export const WriteResult = { done: 0, pending: 1, failed: 2 } as const;
export type WriteResult = (typeof WriteResult)[keyof typeof WriteResult];

export class TcpStream {
  private readonly handle: TcpHandle;
  owner: StreamOwner;
  private closing = false;
  private errored = false;
  private readEnded = false;
  private shutdownStarted = false;
  private shutdownDone = false;
  private pendingWrites = 0;
  /** Bytes of the writes reported pending and not done (some may already be sent). */
  private pending = 0;
  /** Where the next read lands (undefined until the first readStart); kept alive here. */
  private buffer: Buffer | undefined;
  /** The addresses, asked of the kernel once (undefined until asked, null when it failed). */
  private peerName: Endpoint | null | undefined;
  private localName: Endpoint | null | undefined;

  private constructor(handle: TcpHandle, owner: StreamOwner) {
    this.handle = handle;
    this.owner = owner;
    handle[kStream] = this;
  }

  /** Whether `host` is a literal address this module can connect to without a lookup. */
  static canConnect(host: string): boolean {
    return isIPv4(host) || isIPv6(host);
  }

  /**
   * Connect to a literal address (`canConnect`). The result reaches `owner.connected` or
   * `owner.connectFailed` (synchronous failures too, on the next tick, so the caller's state
   * is set first).
   */
  static connect(host: string, port: number, owner: StreamOwner): TcpStream {
    const { tcp } = bindings();
    const handle = new tcp.TCP(tcp.constants.SOCKET);
    const stream = new TcpStream(handle, owner);
    const req = new tcp.TCPConnectWrap();
    req.oncomplete = onConnectComplete;
    const err = isIPv6(host) ? handle.connect6(req, host, port) : handle.connect(req, host, port);
    if (err !== 0) process.nextTick(connectFailedLater, stream, err);
    return stream;
  }

  /** @internal a stream for a handle net.Server's listening handle accepted (acceptStreams). */
  static accepted(handle: TcpHandle): TcpStream {
    // No setNoDelay here: a declined stream goes to net, which sets it again (a setsockopt
    // per accept of an edge listener); the taker calls noDelay().
    return new TcpStream(handle, NO_OWNER);
  }

  /** Send small writes at once (TCP_NODELAY), as every socket of the proxy does. */
  noDelay(): void {
    if (!this.closing) this.handle.setNoDelay(true);
  }

  get closed(): boolean {
    return this.closing;
  }

  get pendingBytes(): number {
    return this.pending;
  }

  /** The peer's address (undefined when the kernel could not say: the socket is gone). */
  peer(): Endpoint | undefined {
    if (this.peerName === undefined) this.peerName = this.askName(true);
    return this.peerName ?? undefined;
  }

  /** The local address the connection came in on. */
  local(): Endpoint | undefined {
    if (this.localName === undefined) this.localName = this.askName(false);
    return this.localName ?? undefined;
  }

  private askName(peer: boolean): Endpoint | null {
    if (this.closing) return null;
    const out: Partial<Endpoint> = {};
    const err = peer ? this.handle.getpeername(out) : this.handle.getsockname(out);
    if (err !== 0 || out.address === undefined || out.port === undefined) return null;
    return { address: out.address, port: out.port, family: out.family ?? '' };
  }

  /** Bytes not yet taken by the kernel (writes reported pending and not done). */
  get writing(): boolean {
    return this.pendingWrites > 0;
  }

  /** @internal */
  onConnected(status: number): void {
    if (this.closing) return;
    if (status !== 0) {
      this.owner.connectFailed(this, errorName(status));
      return;
    }
    this.handle.setNoDelay(true);
    this.owner.connected(this);
  }

  /** Start (or resume) reading into the shared read buffer. */
  /** Start (or resume) reading; the first call sets the buffer of the first read. */
  readStart(firstBuffer: Buffer): void {
    if (this.closing || this.readEnded) return;
    if (this.buffer === undefined) {
      this.buffer = firstBuffer;
      this.handle.useUserBuffer(firstBuffer);
      this.handle.onread = onHandleRead;
    }
    this.handle.readStart();
  }

  readStop(): void {
    if (!this.closing) this.handle.readStop();
  }

  /**
   * Write `data`; on `pending` the stream holds `data` until `owner.writeDone`, so the caller
   * must not reuse it before then. On `failed` the owner's `failed` was called.
   */
  write(data: Buffer): WriteResult {
    if (this.closing) return WriteResult.failed;
    const { stream } = bindings();
    const req = new stream.WriteWrap();
    req.handle = this.handle;
    req.oncomplete = onWriteComplete;
    const err = this.handle.writeBuffer(req, data);
    if (err !== 0) {
      this.fail(err);
      return WriteResult.failed;
    }
    if (stream.streamBaseState[stream.kLastWriteWasAsync] === 0) return WriteResult.done;
    req.buffer = data;
    this.pendingWrites++;
    this.pending += data.length;
    return WriteResult.pending;
  }

  /** Send our FIN once the pending writes are done; the handle closes when both sides ended. */
  shutdown(): void {
    if (this.closing || this.shutdownStarted) return;
    this.shutdownStarted = true;
    const { stream } = bindings();
    const req = new stream.ShutdownWrap();
    req.handle = this.handle;
    req.oncomplete = onShutdownComplete;
    const err = this.handle.shutdown(req);
    if (err !== 0) this.fail(err);
  }

  /**
   * Pass on the peer's FIN: when this side's read already ended and nothing is pending,
   * closing sends the FIN and frees the handle in one step; otherwise shut down our
   * direction after the pending writes.
   */
  forwardFin(): void {
    if (this.ended && !this.writing) this.close();
    else this.shutdown();
  }

  /** Close: a FIN if nothing is unread, else the kernel resets. Pending writes are cancelled. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.handle.close(onHandleClosed);
  }

  /** Close with a reset (SO_LINGER 0) instead of a FIN. */
  reset(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.handle.reset(onHandleClosed) !== 0) this.handle.close(onHandleClosed);
  }

  /** @internal returns the next read's buffer when it changed. */
  onRead(): Buffer | undefined {
    const buffer = this.buffer;
    if (this.closing || buffer === undefined) return undefined;
    const { stream } = bindings();
    const nread = stream.streamBaseState[stream.kReadBytesOrError] ?? 0;
    if (nread > 0) {
      const next = this.owner.read(this, buffer, nread);
      if (next === buffer) return undefined;
      this.buffer = next;
      return next;
    }
    if (nread === 0) return undefined;
    if (nread !== UV_EOF) {
      this.fail(nread);
      return undefined;
    }
    this.readEnded = true;
    this.handle.readStop();
    this.owner.ended(this);
    this.closeIfDone();
    return undefined;
  }

  /** @internal */
  onWriteComplete(req: WriteReq, status: number): void {
    this.pending -= req.buffer?.length ?? 0;
    req.buffer = undefined;
    this.pendingWrites--;
    if (this.closing) return;
    if (status !== 0) {
      this.fail(status);
      return;
    }
    this.owner.writeDone(this);
  }

  /** @internal */
  onShutdownComplete(status: number): void {
    if (this.closing) return;
    // A failed shutdown (the peer reset or left) is not reported from here: the peer may have
    // sent bytes before its reset that are still unread, and the read side reports the reset
    // after them, so they reach the other side before it is reset too.
    this.shutdownDone = true;
    if (status === 0 || this.readEnded) this.closeIfDone();
  }

  /** @internal */
  onClosed(): void {
    this.owner.closed(this, this.errored);
  }

  /** @internal */
  fail(status: number): void {
    if (this.closing) return;
    this.errored = true;
    this.owner.failed(this, errorName(status));
    this.close();
  }

  /** Both directions ended: nothing unread, nothing unsent, so close() is a clean FIN. */
  private closeIfDone(): void {
    if (this.readEnded && this.shutdownDone) this.close();
  }

  /** The peer's FIN was seen (reads are over). */
  get ended(): boolean {
    return this.readEnded;
  }
}

/**
 * Take over `server`'s accepts (call once it listens): each accepted connection is offered
 * to `take` as a TcpStream; when `take` returns false (the listener needs a net.Socket, e.g.
 * for its edge settings) the stream is let go unread and net's own handler makes the socket.
 * Returns what is missing when the server has no listening TCP handle to take over (the
 * caller keeps net's accept path).
 */
export function acceptStreams(server: net.Server, take: (stream: TcpStream) => boolean): string | undefined {
  const handle = (server as unknown as { _handle?: Partial<ServerHandle> | null })._handle;
  const netAccept = handle?.onconnection;
  if (handle === undefined || handle === null || typeof netAccept !== 'function') return 'the server has no listening handle with onconnection';
  const serverHandle = handle as ServerHandle;
  // One closure per listening socket, none per connection.
  serverHandle.onconnection = function onConnection(this: ServerHandle, status: number, client: TcpHandle | undefined): void {
    if (status === 0 && client !== undefined) {
      const stream = TcpStream.accepted(client);
      if (take(stream)) return;
      client[kStream] = undefined;
    }
    netAccept.call(this, status, client);
  };
  return undefined;
}

/** The owner of an accepted stream until its session takes it; nothing reaches it before then. */
const NO_OWNER: StreamOwner = {
  connected: () => undefined,
  connectFailed: () => undefined,
  read: (_stream, buffer) => buffer,
  ended: () => undefined,
  failed: () => undefined,
  writeDone: () => undefined,
  closed: () => undefined,
};

function errorName(status: number): string {
  try {
    return getSystemErrorName(status);
  } catch {
    return `E${String(-status)}`;
  }
}

function streamOf(handle: TcpHandle): TcpStream | undefined {
  return handle[kStream];
}

function onConnectComplete(this: ConnectReq, status: number, handle: TcpHandle): void {
  streamOf(handle)?.onConnected(status);
}

function connectFailedLater(stream: TcpStream, status: number): void {
  stream.onConnected(status);
}

function onHandleRead(this: TcpHandle): Buffer | undefined {
  return streamOf(this)?.onRead();
}

function onWriteComplete(this: WriteReq, status: number): void {
  streamOf(this.handle)?.onWriteComplete(this, status);
}

function onShutdownComplete(this: ShutdownReq, status: number): void {
  streamOf(this.handle)?.onShutdownComplete(status);
}

function onHandleClosed(this: TcpHandle): void {
  const stream = streamOf(this);
  this[kStream] = undefined;
  stream?.onClosed();
}
