import { describe, expect, it } from 'vitest';
import { SocketPool, type Poolable } from '../../../src/dataplane/udp-socket-pool.ts';

class FakeSocket implements Poolable {
  readonly slot: number;
  readonly backendId: string;
  broken = false;
  outstanding = 0;
  settling = false;
  closed = 0;
  constructor(slot: number, backendId = `b${slot}`) {
    this.slot = slot;
    this.backendId = backendId;
  }
  close(): void {
    this.closed++;
    this.broken = true;
  }
}

describe('SocketPool', () => {
  it('lends the most recently given socket of the same backend first', () => {
    const pool = new SocketPool<FakeSocket>(4);
    const [a, b, c] = [new FakeSocket(1), new FakeSocket(1), new FakeSocket(2)];
    expect([pool.give(a, 0), pool.give(b, 1), pool.give(c, 2)]).toEqual(['pooled', 'pooled', 'pooled']);
    expect(pool.size).toBe(3);
    expect(pool.take(1, 'b1')).toBe(b);
    expect(pool.take(1, 'b1')).toBe(a);
    expect(pool.take(1, 'b1')).toBeUndefined();
    expect(pool.take(3, 'b3')).toBeUndefined();
    expect(pool.size).toBe(1);
  });

  it.each([
    { name: 'a broken socket is closed, not pooled', prepare: (s: FakeSocket) => (s.broken = true), outcome: 'closed', size: 0 },
    { name: 'a socket owed replies waits to settle', prepare: (s: FakeSocket) => (s.outstanding = 2), outcome: 'settling', size: 1 },
    { name: 'a socket owed nothing is ready', prepare: () => undefined, outcome: 'pooled', size: 1 },
  ])('give: $name', ({ prepare, outcome, size }) => {
    const pool = new SocketPool<FakeSocket>(4);
    const socket = new FakeSocket(1);
    prepare(socket);
    expect(pool.give(socket, 0)).toBe(outcome);
    expect(pool.size).toBe(size);
    expect(socket.settling).toBe(outcome === 'settling');
  });

  it('never lends a settling socket; lends it once it settled', () => {
    const pool = new SocketPool<FakeSocket>(4);
    const socket = new FakeSocket(1);
    socket.outstanding = 1;
    pool.give(socket, 0);
    expect(pool.take(1, 'b1')).toBeUndefined();
    socket.outstanding = 0;
    expect(pool.settle(socket, 5)).toBe('pooled');
    expect(socket.settling).toBe(false);
    expect(pool.take(1, 'b1')).toBe(socket);
  });

  it('closes what does not fit under the bound per backend', () => {
    const pool = new SocketPool<FakeSocket>(2);
    const sockets = [new FakeSocket(1), new FakeSocket(1), new FakeSocket(1), new FakeSocket(2)];
    expect(sockets.map((s) => pool.give(s, 0))).toEqual(['pooled', 'pooled', 'closed', 'pooled']);
    expect(sockets.map((s) => s.closed)).toEqual([0, 0, 1, 0]);
    expect(pool.size).toBe(3);
  });

  it('counts settling sockets against the bound per backend', () => {
    const pool = new SocketPool<FakeSocket>(2);
    const owed = [new FakeSocket(1), new FakeSocket(1), new FakeSocket(1)];
    for (const s of owed) s.outstanding = 1;
    const ready = new FakeSocket(1);
    expect([...owed.map((s) => pool.give(s, 0)), pool.give(ready, 0), pool.give(new FakeSocket(2), 0)]).toEqual([
      'settling',
      'settling',
      'closed',
      'closed',
      'pooled',
    ]);
    const first = owed[0] as FakeSocket;
    first.outstanding = 0;
    // Settling made no room: it moves to ready within the same bound.
    expect(pool.settle(first, 1)).toBe('pooled');
    expect(pool.size).toBe(3);
    expect(pool.take(1, 'b1')).toBe(first);
    // One settling socket of backend 1 left: room for one ready socket.
    expect([pool.give(new FakeSocket(1), 2), pool.give(new FakeSocket(1), 2)]).toEqual(['pooled', 'closed']);
  });

  it('skips and closes a socket of a backend that no longer holds its slot, or that broke while pooled', () => {
    const pool = new SocketPool<FakeSocket>(4);
    const old = new FakeSocket(1, 'old');
    const broke = new FakeSocket(1, 'new');
    const good = new FakeSocket(1, 'new');
    pool.give(good, 0);
    pool.give(old, 1);
    pool.give(broke, 2);
    broke.broken = true;
    expect(pool.take(1, 'new')).toBe(good);
    expect([old.closed, broke.closed]).toEqual([1, 1]);
    expect(pool.size).toBe(0);
  });

  it.each([
    { now: 99, closed: 0, left: 3, next: 100 },
    { now: 100, closed: 1, left: 2, next: 110 },
    { now: 115, closed: 2, left: 1, next: 120 },
    { now: 120, closed: 3, left: 0, next: undefined },
  ])('sweep at $now with idle 100 ms closes $closed (ready given at 0 and 20, settling since 10)', ({ now, closed, left, next }) => {
    const pool = new SocketPool<FakeSocket>(4);
    const [first, second, owed] = [new FakeSocket(1), new FakeSocket(1), new FakeSocket(2)];
    pool.give(first, 0);
    owed.outstanding = 1;
    pool.give(owed, 10);
    pool.give(second, 20);
    expect(pool.nextExpiry(100)).toBe(100);
    expect(pool.sweep(now, 100)).toBe(closed);
    expect(pool.size).toBe(left);
    expect(pool.nextExpiry(100)).toBe(next);
  });

  it('closeUnkept closes the sockets of backends gone from the keep set, ready or settling', () => {
    const pool = new SocketPool<FakeSocket>(4);
    const kept = new FakeSocket(1);
    const gone = new FakeSocket(2);
    const goneOwed = new FakeSocket(2);
    goneOwed.outstanding = 1;
    const reused = new FakeSocket(3, 'previous');
    pool.give(kept, 0);
    pool.give(gone, 0);
    pool.give(goneOwed, 0);
    pool.give(reused, 0);
    expect(pool.closeUnkept(new Map([[1, 'b1'], [3, 'b3']]))).toBe(3);
    expect([kept, gone, goneOwed, reused].map((s) => s.closed)).toEqual([0, 1, 1, 1]);
    expect(pool.take(1, 'b1')).toBe(kept);
  });

  it('closeAll closes every socket once and empties the pool', () => {
    const pool = new SocketPool<FakeSocket>(4);
    const sockets = [new FakeSocket(1), new FakeSocket(2), new FakeSocket(2)];
    const owed = sockets[2] as FakeSocket;
    owed.outstanding = 3;
    for (const s of sockets) pool.give(s, 0);
    pool.closeAll();
    expect(sockets.map((s) => s.closed)).toEqual([1, 1, 1]);
    expect(pool.size).toBe(0);
    expect(pool.nextExpiry(1)).toBeUndefined();
  });
});
