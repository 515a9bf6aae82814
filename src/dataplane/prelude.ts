/**
 * Reads the first bytes of an accepted connection (a PROXY header, a TLS ClientHello) into
 * a pure parser, bounded in time and size, before the connection is routed.
 *
 * - Time: one timer from the start, cleared on every outcome. It is a deadline, not an idle
 *   timer, so a client that trickles one byte a second is cut all the same.
 * - Size: the parser never asks for more than its bound, and is run as soon as the bytes it
 *   asked for are here, so at most one socket read beyond its bound is ever held.
 * - Cost: chunks are kept as they come and joined only when the parser's `needed` is
 *   reached, so a hello in many small segments is not re-copied per segment.
 *
 * On `complete` the socket is paused again with no listener of ours left on it, and the
 * outcome carries every byte read so far: the caller decides what to strip (a PROXY header)
 * and what to put back for the backend (everything else) with `socket.unshift`. On any
 * other outcome the caller closes the socket.
 */
import type net from 'node:net';
import type { ParseResult } from './parse-result.ts';

export type PreludeOutcome<T> =
  | { readonly kind: 'complete'; readonly value: T; readonly bytes: Buffer; readonly consumed: number }
  /** The parser said invalid, or the client ended its side before a whole prelude. */
  | { readonly kind: 'invalid'; readonly reason: string }
  | { readonly kind: 'timeout' }
  /** The socket closed or failed first. */
  | { readonly kind: 'closed' };

export function readPrelude<T>(
  socket: net.Socket,
  parse: (bytes: Uint8Array) => ParseResult<T>,
  timeoutMs: number,
  initial: Buffer | undefined,
  done: (outcome: PreludeOutcome<T>) => void,
): void {
  new PreludeRead(socket, parse, timeoutMs, done).start(initial);
}

class PreludeRead<T> {
  private readonly socket: net.Socket;
  private readonly parse: (bytes: Uint8Array) => ParseResult<T>;
  private readonly done: (outcome: PreludeOutcome<T>) => void;
  private readonly timer: NodeJS.Timeout;
  private chunks: Buffer[] = [];
  private length = 0;
  private needed = 1;
  private finished = false;

  constructor(socket: net.Socket, parse: (bytes: Uint8Array) => ParseResult<T>, timeoutMs: number, done: (outcome: PreludeOutcome<T>) => void) {
    this.socket = socket;
    this.parse = parse;
    this.done = done;
    this.timer = setTimeout(this.onTimeout, timeoutMs);
  }

  start(initial: Buffer | undefined): void {
    this.socket.on('data', this.onData);
    this.socket.on('end', this.onEnd);
    this.socket.on('close', this.onClose);
    this.socket.on('error', this.onError);
    if (initial !== undefined && initial.length > 0) this.onData(initial);
    if (!this.finished) this.socket.resume();
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.finished) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
    if (this.length < this.needed) return;
    const bytes = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks, this.length);
    this.chunks = [bytes];
    const result = this.parse(bytes);
    switch (result.kind) {
      case 'need-more':
        this.needed = result.needed;
        return;
      case 'complete':
        this.finish({ kind: 'complete', value: result.value, bytes, consumed: result.consumed });
        return;
      case 'invalid':
        this.finish({ kind: 'invalid', reason: result.reason });
        return;
    }
  };

  private readonly onEnd = (): void => {
    this.finish({ kind: 'invalid', reason: 'the client ended before a whole header' });
  };

  private readonly onClose = (): void => {
    this.finish({ kind: 'closed' });
  };

  private readonly onError = (): void => {
    // 'close' follows and reports it.
  };

  private readonly onTimeout = (): void => {
    this.finish({ kind: 'timeout' });
  };

  private finish(outcome: PreludeOutcome<T>): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.socket.pause();
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onEnd);
    this.socket.removeListener('close', this.onClose);
    this.socket.removeListener('error', this.onError);
    this.chunks = [];
    this.done(outcome);
  }
}
