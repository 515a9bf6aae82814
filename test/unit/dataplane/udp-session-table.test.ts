import { describe, expect, it } from 'vitest';
import { SessionTable, type SessionNode } from '../../../src/dataplane/udp-session-table.ts';

function node(key: string): SessionNode {
  return { key, id: key, lastActive: 0, older: undefined, newer: undefined, inTable: false };
}

/** Keys from least to most recently active. */
function order(table: SessionTable<SessionNode>): string[] {
  return table.sessions().map((s) => s.key);
}

/** Pop every session idle for `idleMs` at `now`, as the proxy's sweep does. */
function sweep(table: SessionTable<SessionNode>, now: number, idleMs: number): string[] {
  const out: string[] = [];
  for (let s = table.expired(now, idleMs); s !== undefined; s = table.expired(now, idleMs)) {
    table.remove(s);
    out.push(s.key);
  }
  return out;
}

type Step =
  | { add: string; at: number }
  | { touch: string; at: number }
  | { remove: string }
  | { sweep: number; idle: number; expect: string[] };

function run(capacity: number, steps: Step[]): SessionTable<SessionNode> {
  const table = new SessionTable<SessionNode>(capacity);
  const nodes = new Map<string, SessionNode>();
  for (const step of steps) {
    if ('add' in step) {
      const n = node(step.add);
      nodes.set(step.add, n);
      table.add(n, step.at);
    } else if ('touch' in step) {
      table.touch(nodes.get(step.touch)!, step.at);
    } else if ('remove' in step) {
      table.remove(nodes.get(step.remove)!);
    } else {
      expect(sweep(table, step.sweep, step.idle)).toEqual(step.expect);
    }
  }
  return table;
}

describe('SessionTable', () => {
  it.each<[string, Step[], string[]]>([
    ['keeps sessions in order of creation when none is touched', [{ add: 'a', at: 1 }, { add: 'b', at: 2 }, { add: 'c', at: 3 }], ['a', 'b', 'c']],
    ['moves a touched session to the most recent end', [{ add: 'a', at: 1 }, { add: 'b', at: 2 }, { add: 'c', at: 3 }, { touch: 'a', at: 4 }], ['b', 'c', 'a']],
    ['keeps the order when the most recent session is touched', [{ add: 'a', at: 1 }, { add: 'b', at: 2 }, { touch: 'b', at: 5 }], ['a', 'b']],
    ['unlinks a removed session from the middle', [{ add: 'a', at: 1 }, { add: 'b', at: 2 }, { add: 'c', at: 3 }, { remove: 'b' }], ['a', 'c']],
    ['unlinks a removed head and tail', [{ add: 'a', at: 1 }, { add: 'b', at: 2 }, { add: 'c', at: 3 }, { remove: 'a' }, { remove: 'c' }], ['b']],
    ['ignores removing a session twice', [{ add: 'a', at: 1 }, { remove: 'a' }, { remove: 'a' }], []],
  ])('%s', (_name, steps, expected) => {
    const table = run(10, steps);
    expect(order(table)).toEqual(expected);
    expect(table.size).toBe(expected.length);
    for (const key of expected) expect(table.get(key)?.key).toBe(key);
  });

  it.each<[string, Step[]]>([
    ['expires nothing before the timeout', [{ add: 'a', at: 0 }, { sweep: 999, idle: 1000, expect: [] }]],
    ['expires a session at exactly the timeout', [{ add: 'a', at: 0 }, { sweep: 1000, idle: 1000, expect: ['a'] }]],
    [
      'expires only the idle prefix, oldest first',
      [{ add: 'a', at: 0 }, { add: 'b', at: 100 }, { add: 'c', at: 500 }, { sweep: 1200, idle: 1000, expect: ['a', 'b'] }],
    ],
    [
      'spares a session that traffic kept alive',
      [{ add: 'a', at: 0 }, { add: 'b', at: 100 }, { touch: 'a', at: 900 }, { sweep: 1500, idle: 1000, expect: ['b'] }],
    ],
    [
      'expires everything after a long silence',
      [{ add: 'a', at: 0 }, { add: 'b', at: 1 }, { add: 'c', at: 2 }, { sweep: 10_000, idle: 1000, expect: ['a', 'b', 'c'] }],
    ],
  ])('%s', (_name, steps) => {
    run(10, steps);
  });

  it('visits only the expired sessions in a sweep, whatever the table size', () => {
    const table = new SessionTable<SessionNode>(100_000);
    for (let i = 0; i < 100_000; i++) table.add(node(`c${i}`), i);
    let visited = 0;
    const counting = new Proxy(table, {
      get(target, prop, receiver) {
        if (prop === 'expired') {
          return (now: number, idle: number) => {
            visited++;
            return target.expired(now, idle);
          };
        }
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    expect(sweep(counting, 1000 + 9, 1000)).toHaveLength(10);
    // Ten expired sessions, plus the one look that found the next still fresh.
    expect(visited).toBe(11);
    expect(table.size).toBe(99_990);
  });

  it('says when the next session expires', () => {
    const table = new SessionTable<SessionNode>(4);
    expect(table.nextExpiry(1000)).toBeUndefined();
    const a = node('a');
    table.add(a, 10);
    table.add(node('b'), 20);
    expect(table.nextExpiry(1000)).toBe(1010);
    table.touch(a, 30);
    expect(table.nextExpiry(1000)).toBe(1020);
  });

  it('names the least recently active session for eviction and refuses to grow past its capacity', () => {
    const table = new SessionTable<SessionNode>(2);
    const a = node('a');
    table.add(a, 1);
    table.add(node('b'), 2);
    table.touch(a, 3);
    expect(table.full).toBe(true);
    expect(() => table.add(node('c'), 4)).toThrow(/full/);
    const victim = table.oldest()!;
    expect(victim.key).toBe('b');
    table.remove(victim);
    table.add(node('c'), 4);
    expect(order(table)).toEqual(['a', 'c']);
    expect(table.size).toBe(2);
  });

  it('refuses a key that is already present', () => {
    const table = new SessionTable<SessionNode>(2);
    table.add(node('a'), 1);
    expect(() => table.add(node('a'), 2)).toThrow(/already/);
  });

  it('clamps a clock that goes backwards so the expired sessions stay a prefix', () => {
    const table = new SessionTable<SessionNode>(4);
    table.add(node('a'), 100);
    table.add(node('b'), 50);
    expect(table.get('b')?.lastActive).toBe(100);
    expect(sweep(table, 1099, 1000)).toEqual([]);
    expect(sweep(table, 1100, 1000)).toEqual(['a', 'b']);
  });

  it('lets its capacity be lowered, leaving the eviction to the caller', () => {
    const table = new SessionTable<SessionNode>(3);
    for (const key of ['a', 'b', 'c']) table.add(node(key), 1);
    table.capacity = 1;
    const evicted: string[] = [];
    while (table.size > table.capacity) {
      const victim = table.oldest()!;
      table.remove(victim);
      evicted.push(victim.key);
    }
    expect(evicted).toEqual(['a', 'b']);
    expect(() => (table.capacity = 0)).toThrow(RangeError);
  });

  it('keeps size and order consistent over a long random run (against a simple model)', () => {
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const capacity = 50;
    const table = new SessionTable<SessionNode>(capacity);
    const model: { key: string; at: number }[] = [];
    let now = 0;
    for (let step = 0; step < 20_000; step++) {
      now += Math.floor(random() * 5);
      const key = `k${Math.floor(random() * 120)}`;
      const existing = table.get(key);
      if (existing !== undefined) {
        table.touch(existing, now);
        model.splice(model.findIndex((m) => m.key === key), 1);
        model.push({ key, at: now });
      } else {
        if (table.full) {
          const victim = table.oldest()!;
          table.remove(victim);
          expect(victim.key).toBe(model.shift()?.key);
        }
        table.add(node(key), now);
        model.push({ key, at: now });
      }
      if (step % 100 === 0) {
        const gone = sweep(table, now, 60);
        const modelGone = model.filter((m) => m.at + 60 <= now).map((m) => m.key);
        model.splice(0, modelGone.length);
        expect(gone).toEqual(modelGone);
      }
      expect(table.size).toBeLessThanOrEqual(capacity);
    }
    expect(order(table)).toEqual(model.map((m) => m.key));
  });
});
