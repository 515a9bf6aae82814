import { describe, expect, it } from 'vitest';
import { hashAddress, hashString, mixPort } from '../../../src/shared/balancer/hash.ts';

describe('client and backend hashing', () => {
  it('is a fixed function: the same value in every thread, process and release', () => {
    expect([hashString(''), hashString('a'), hashAddress('127.0.0.1'), mixPort(hashAddress('127.0.0.1'), 80)]).toEqual([
      2872998923, 444641715, 2377737407, 473337677,
    ]);
  });

  it('hashes an IPv4 client seen through a dual-stack listener like the plain address', () => {
    expect(hashAddress('::ffff:10.1.2.3')).toBe(hashAddress('10.1.2.3'));
    expect(hashAddress('::ffff:1')).not.toBe(hashAddress('1'));
  });

  it('spreads neighbouring addresses and ports apart', () => {
    const buckets = new Array<number>(16).fill(0);
    for (let i = 0; i < 1_600; i++) buckets[hashAddress(`10.0.${i >> 8}.${i & 255}`) % 16]!++;
    for (const count of buckets) expect(Math.abs(count - 100)).toBeLessThan(40);
    const base = hashAddress('10.0.0.1');
    expect(new Set(Array.from({ length: 100 }, (_, port) => mixPort(base, port))).size).toBe(100);
  });

  it('gives independent hashes for different seeds', () => {
    expect(hashString('10.0.0.1:80', 1)).not.toBe(hashString('10.0.0.1:80', 2));
  });
});
