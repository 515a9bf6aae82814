/**
 * Writing in many small pieces, so the proxy's reads of them are mostly partial: they land in
 * a worker's shared read buffer, where a read written on without a copy would be overwritten
 * by the next one before the kernel took it (the defect the data-path tests look for).
 */
import type net from 'node:net';

/**
 * Writes `data` to `socket` in pieces of 100 B to 16 KiB, the next after `nextTurn` (or after
 * 'drain' when the socket is full), then ends it.
 */
export function dribble(socket: net.Socket, data: Buffer, nextTurn: (next: () => void) => void): void {
  let offset = 0;
  let size = 100;
  const next = (): void => {
    if (offset >= data.length) {
      socket.end();
      return;
    }
    size = (size * 7 + 1237) % (16 * 1024) || 100;
    const piece = data.subarray(offset, offset + size);
    offset += piece.length;
    if (socket.write(piece)) nextTurn(next);
    else socket.once('drain', next);
  };
  next();
}
