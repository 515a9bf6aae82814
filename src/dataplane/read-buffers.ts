/**
 * Backend sockets, and on the handles path the clients of plain listeners too, read into
 * buffers the proxy owns (net.connect's `onread` on the net path; the handle's user buffer,
 * stream-handle.ts, on the handles path) instead of a fresh 64 KiB allocation per read that
 * the stream layer would make, shrink and leave to the garbage collector.
 *
 * - Every backend socket of a worker reads into one shared buffer, which is never handed
 *   to a write: a read that did not fill it (requests, answers, the tail of a transfer)
 *   is written as a copy of just its bytes (small copies come from Node's buffer pool).
 *   A write keeps a reference to its bytes until the kernel takes them, and each socket
 *   holds on to the buffer it will read into next, so a shared buffer handed to a write
 *   could be overwritten by another socket's read before that write completes.
 * - A read that filled its buffer means a bulk transfer: the socket switches to a buffer
 *   of its own, whose reads are written without a copy. If such a write has to wait, the
 *   buffer stays with the write and the socket gets a new one; once a read no longer
 *   fills it, the socket goes back to the shared buffer, so idle connections own none.
 *
 * On the net path the read callback picks the buffer for its socket's next read in
 * `nextReadBuffer`; Node asks for it (calls `takeNextReadBuffer`) right after the callback,
 * on the same socket. On the handles path the read callback returns it.
 */

export const READ_BUFFER_BYTES = 64 * 1024;
export const sharedReadBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
let nextReadBuffer: Buffer<ArrayBuffer> = sharedReadBuffer;

export function takeNextReadBuffer(): Buffer<ArrayBuffer> {
  const buffer = nextReadBuffer;
  nextReadBuffer = sharedReadBuffer;
  return buffer;
}

/**
 * Where read bytes are written: a net.Socket, or a client or backend link on stream handles.
 * `write` returns false when the reader should stop until the sink drains; `writableLength`
 * is above 0 while a write still holds a reference to its bytes.
 */
export interface ByteSink {
  write(chunk: Buffer): boolean;
  readonly writableLength: number;
}

/** A socket's own read buffer while it streams in bulk (undefined: it reads the shared one). */
export interface ReadBufferHolder {
  ownReadBuffer: Buffer<ArrayBuffer> | undefined;
}

/**
 * Write the `bytes` just read into `buffer` to `to`, and choose the buffer of the reading
 * socket's next read. Returns false when `to` is full (pause the reader until it drains).
 */
export function relayRead(holder: ReadBufferHolder, to: ByteSink, buffer: Uint8Array, bytes: number): boolean {
  const flowing = writeRead(holder, to, buffer, bytes);
  nextReadBuffer = nextBufferFor(holder, buffer, bytes);
  return flowing;
}

/** Write the `bytes` read into `buffer` to `to`: a copy from the shared buffer, else the bytes themselves. */
export function writeRead(holder: ReadBufferHolder, to: ByteSink, buffer: Uint8Array, bytes: number): boolean {
  let flowing: boolean;
  if (buffer === sharedReadBuffer) {
    flowing = to.write(Buffer.copyBytesFrom(buffer, 0, bytes));
  } else {
    flowing = to.write((buffer as Buffer).subarray(0, bytes));
    // The write holds on to the buffer until the kernel took every byte of it.
    if (to.writableLength > 0) holder.ownReadBuffer = undefined;
  }
  return flowing;
}

/** The buffer of the next read: the holder's own while reads fill their buffer, else the shared one. */
export function nextBufferFor(holder: ReadBufferHolder, buffer: Uint8Array, bytes: number): Buffer<ArrayBuffer> {
  if (bytes === buffer.length) {
    holder.ownReadBuffer ??= Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
    return holder.ownReadBuffer;
  }
  holder.ownReadBuffer = undefined;
  return sharedReadBuffer;
}
