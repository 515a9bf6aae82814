/**
 * Backend sockets of one UDP listener in one worker, waiting to be lent to the next session
 * to the same backend, so a one-reply session (DNS-like, `max_replies`) costs a table entry
 * instead of a socket's create, bind, connect and close.
 *
 * A socket given back with replies still owed (its client sent more than it got answered)
 * waits apart, `settling`, until they arrive (the socket drops and counts them) or until it
 * has been idle for the pool's idle time, when it is closed: a late reply must never reach
 * the next client. Ready sockets wait per backend, most recently used on top (the one lent
 * next, its kernel state warm), so the bottom is the oldest and ages out first.
 *
 * Pure: time is an argument (ms, any monotonic clock); sockets are anything Poolable, so a
 * test passes plain objects.
 *
 * What must stay true:
 * - a socket is in at most one place (a backend's stack or `settling`), and in none while lent;
 * - a backend never has more than `perBackend` sockets here, ready and settling together; a
 *   socket that does not fit is closed;
 * - `take` never returns a broken socket, nor one of another backend that reused the slot.
 *
 * Cost: take, give and settle are O(1) (amortised); sweep is O(closed + backends pooled).
 */

export interface Poolable {
  readonly slot: number;
  readonly backendId: string;
  readonly broken: boolean;
  /** Replies still owed to what its last holder sent. */
  readonly outstanding: number;
  settling: boolean;
  close(): void;
}

interface Idle<S> {
  readonly socket: S;
  readonly since: number;
}

export type GiveOutcome = 'pooled' | 'settling' | 'closed';

export class SocketPool<S extends Poolable> {
  readonly perBackend: number;
  private readonly ready = new Map<number, Idle<S>[]>();
  private readonly waiting = new Map<S, number>();
  /** Settling sockets per backend slot (they count against `perBackend` too). */
  private readonly waitingBySlot = new Map<number, number>();
  private count = 0;

  constructor(perBackend: number) {
    if (!Number.isInteger(perBackend) || perBackend < 0) throw new RangeError(`pool size per backend must be an integer >= 0, got ${perBackend}`);
    this.perBackend = perBackend;
  }

  /** Sockets held (ready and settling). */
  get size(): number {
    return this.count + this.waiting.size;
  }

  /** A ready socket to the backend `backendId` in `slot`, most recently used first. */
  take(slot: number, backendId: string): S | undefined {
    const stack = this.ready.get(slot);
    if (stack === undefined) return undefined;
    for (let idle = stack.pop(); idle !== undefined; idle = stack.pop()) {
      this.count--;
      const { socket } = idle;
      if (!socket.broken && socket.backendId === backendId) {
        if (stack.length === 0) this.ready.delete(slot);
        return socket;
      }
      socket.close();
    }
    this.ready.delete(slot);
    return undefined;
  }

  /** A session let go of `socket` at `now`: keep it ready, let it settle, or close it. */
  give(socket: S, now: number): GiveOutcome {
    if (socket.broken) {
      socket.close();
      return 'closed';
    }
    if (socket.outstanding > 0) {
      if (this.held(socket.slot) >= this.perBackend) {
        socket.close();
        return 'closed';
      }
      socket.settling = true;
      this.waiting.set(socket, now);
      this.waitingBySlot.set(socket.slot, (this.waitingBySlot.get(socket.slot) ?? 0) + 1);
      return 'settling';
    }
    return this.shelve(socket, now);
  }

  /** A settling socket got every reply it was owed at `now`. */
  settle(socket: S, now: number): GiveOutcome {
    if (!this.unwait(socket)) return 'closed';
    socket.settling = false;
    if (socket.broken) {
      socket.close();
      return 'closed';
    }
    return this.shelve(socket, now);
  }

  /** Close the sockets idle (ready or settling) for `idleMs` at `now`; returns how many. */
  sweep(now: number, idleMs: number): number {
    let closed = 0;
    for (const [slot, stack] of this.ready) {
      let stale = 0;
      while (stale < stack.length && ((stack[stale] as Idle<S>).since + idleMs <= now || (stack[stale] as Idle<S>).socket.broken)) stale++;
      if (stale === 0) continue;
      for (const { socket } of stack.splice(0, stale)) socket.close();
      this.count -= stale;
      closed += stale;
      if (stack.length === 0) this.ready.delete(slot);
    }
    for (const [socket, since] of this.waiting) {
      if (since + idleMs > now && !socket.broken) continue;
      this.unwait(socket);
      socket.close();
      closed++;
    }
    return closed;
  }

  /** When the next socket will have been idle for `idleMs`, or undefined when empty. O(backends pooled). */
  nextExpiry(idleMs: number): number | undefined {
    let first: number | undefined;
    for (const stack of this.ready.values()) {
      const since = stack[0]?.since;
      if (since !== undefined && (first === undefined || since < first)) first = since;
    }
    for (const since of this.waiting.values()) if (first === undefined || since < first) first = since;
    return first === undefined ? undefined : first + idleMs;
  }

  /** Close the sockets of backends not in `keep` (slot → id): drained, removed, or the slot reused. */
  closeUnkept(keep: ReadonlyMap<number, string>): number {
    let closed = 0;
    for (const [slot, stack] of this.ready) {
      const kept = stack.filter(({ socket }) => keep.get(slot) === socket.backendId);
      if (kept.length === stack.length) continue;
      for (const { socket } of stack) if (keep.get(slot) !== socket.backendId) socket.close();
      closed += stack.length - kept.length;
      this.count -= stack.length - kept.length;
      if (kept.length === 0) this.ready.delete(slot);
      else this.ready.set(slot, kept);
    }
    for (const socket of this.waiting.keys()) {
      if (keep.get(socket.slot) === socket.backendId) continue;
      this.unwait(socket);
      socket.close();
      closed++;
    }
    return closed;
  }

  closeAll(): void {
    for (const stack of this.ready.values()) for (const { socket } of stack) socket.close();
    for (const socket of this.waiting.keys()) socket.close();
    this.ready.clear();
    this.waiting.clear();
    this.waitingBySlot.clear();
    this.count = 0;
  }

  /** Sockets of the backend in `slot` here, ready and settling. */
  private held(slot: number): number {
    return (this.ready.get(slot)?.length ?? 0) + (this.waitingBySlot.get(slot) ?? 0);
  }

  private unwait(socket: S): boolean {
    if (!this.waiting.delete(socket)) return false;
    const left = (this.waitingBySlot.get(socket.slot) ?? 1) - 1;
    if (left === 0) this.waitingBySlot.delete(socket.slot);
    else this.waitingBySlot.set(socket.slot, left);
    return true;
  }

  private shelve(socket: S, now: number): GiveOutcome {
    let stack = this.ready.get(socket.slot);
    if (stack === undefined) {
      stack = [];
      this.ready.set(socket.slot, stack);
    }
    if (this.held(socket.slot) >= this.perBackend) {
      if (stack.length === 0) this.ready.delete(socket.slot);
      socket.close();
      return 'closed';
    }
    stack.push({ socket, since: now });
    this.count++;
    return 'pooled';
  }
}
