import { describe, expect, it } from 'vitest';
import { isIP } from 'node:net';
import { Acl, aclAllowsText, canonicalCidr, parseCidr } from '../../../src/shared/cidr.ts';
import { formatIp, parseIpInto } from '../../../src/shared/ip-address.ts';
import { below, prng } from '../../helpers/fuzz.ts';

function words(text: string): number[] {
  const out = new Int32Array(4);
  const family = parseIpInto(text, out, { allowZone: true });
  return family === 0 ? [] : [family, ...Array.from(out, (w) => w >>> 0)];
}

describe('parseIpInto', () => {
  it.each([
    ['127.0.0.2', [4, 0, 0, 0xffff, 0x7f000002]],
    ['::ffff:127.0.0.2', [4, 0, 0, 0xffff, 0x7f000002]],
    ['0.0.0.0', [4, 0, 0, 0xffff, 0]],
    ['255.255.255.255', [4, 0, 0, 0xffff, 0xffffffff]],
    ['::1', [6, 0, 0, 0, 1]],
    ['::', [6, 0, 0, 0, 0]],
    ['2001:db8::1', [6, 0x20010db8, 0, 0, 1]],
    ['2001:DB8:0:0:1:2:3:4', [6, 0x20010db8, 0, 0x10002, 0x30004]],
    ['1:2:3:4:5:6:7::', [6, 0x10002, 0x30004, 0x50006, 0x70000]],
    ['::2:3:4:5:6:7:8', [6, 0x2, 0x30004, 0x50006, 0x70008]],
    ['64:ff9b::10.0.0.1', [6, 0x0064ff9b, 0, 0, 0x0a000001]],
    ['fe80::1%eth0', [6, 0xfe800000, 0, 0, 1]],
  ])('reads %s', (text, expected) => {
    expect(words(text)).toEqual(expected);
  });

  it.each([
    '', '1', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4 ', '1..2.3', 'a.b.c.d', ':', ':::', '1::2::3',
    '1:2:3:4:5:6:7:8:9', '::1:2:3:4:5:6:7:8', '12345::', '1:2', '1:', ':1', 'g::', '::1.2.3', '::1.2.3.4.5', 'fe80::1%',
  ])('refuses %j', (text) => {
    expect(words(text)).toEqual([]);
  });

  it('refuses a zone unless the caller allows one', () => {
    expect(parseIpInto('fe80::1%eth0', new Int32Array(4))).toBe(0);
  });

  it('agrees with node:net isIP and round-trips through formatIp on 20,000 random addresses', () => {
    const random = prng(42);
    const out = new Int32Array(4);
    const again = new Int32Array(4);
    const wrong: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      const v6 = below(random, 2) === 1;
      const text = v6
        ? Array.from({ length: 8 }, () => (below(random, 3) === 0 ? 0 : below(random, 65536)).toString(16)).join(':')
        : Array.from({ length: 4 }, () => below(random, 256)).join('.');
      const family = parseIpInto(text, out);
      if ((family === 4 && v6 ? 6 : family) !== isIP(text)) wrong.push(`${text}: family ${family}`);
      if (family === 0) continue;
      const formatted = formatIp(out, family);
      if (parseIpInto(formatted, again) !== family || again.some((w, k) => w !== out[k])) wrong.push(`${text}: formatted ${formatted}`);
    }
    expect(wrong).toEqual([]);
  });

  it('formats IPv6 in the RFC 5952 form', () => {
    const cases: [string, string][] = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
      ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
      ['::', '::'],
    ];
    for (const [input, expected] of cases) {
      const out = new Int32Array(4);
      parseIpInto(input, out);
      expect(formatIp(out, 6)).toBe(expected);
    }
  });
});

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['10.1.2.3', '10.1.2.3/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['2001:db8::/32', '2001:db8::/32'],
    ['::1', '::1/128'],
    ['::/0', '::/0'],
    ['::ffff:10.0.0.0/104', '10.0.0.0/8'],
    ['2001:DB8:0::/48', '2001:db8::/48'],
  ])('reads %s as %s', (text, canonical) => {
    expect(canonicalCidr(text)).toBe(canonical);
  });

  it.each([
    ['10.0.0.1/8', '"10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?'],
    ['2001:db8::1/32', '"2001:db8::1/32" has host bits set; did you mean 2001:db8::/32?'],
    ['10.0.0.0/33', '"10.0.0.0/33": the prefix length must be 0-32'],
    ['::/129', '"::/129": the prefix length must be 0-128'],
    ['10.0.0.0/08', '"10.0.0.0/08": the prefix length must be 0-32'],
    ['10.0.0.0/', '"10.0.0.0/": the prefix length must be 0-32'],
    ['example.com/8', '"example.com/8" is not a CIDR block like 10.0.0.0/8 or 2001:db8::/32'],
    ['fe80::1%eth0/128', '"fe80::1%eth0/128" is not a CIDR block like 10.0.0.0/8 or 2001:db8::/32'],
  ])('refuses %s: %s', (text, message) => {
    expect(parseCidr(text)).toEqual({ ok: false, message });
  });
});

describe('Acl', () => {
  const cases: { allow: string[]; deny: string[]; address: string; allowed: boolean }[] = [
    { allow: [], deny: [], address: '1.2.3.4', allowed: true },
    { allow: [], deny: [], address: '::1', allowed: true },
    { allow: ['10.0.0.0/8'], deny: [], address: '10.9.9.9', allowed: true },
    { allow: ['10.0.0.0/8'], deny: [], address: '11.0.0.1', allowed: false },
    { allow: ['10.0.0.0/8'], deny: [], address: '::1', allowed: false },
    { allow: ['10.0.0.0/8'], deny: ['10.1.2.3/32'], address: '10.1.2.3', allowed: false },
    { allow: ['10.0.0.0/8'], deny: ['10.1.2.3/32'], address: '10.1.2.4', allowed: true },
    // Deny wins even when the allow is more specific.
    { allow: ['10.1.2.3/32'], deny: ['10.0.0.0/8'], address: '10.1.2.3', allowed: false },
    { allow: [], deny: ['127.0.0.4/32'], address: '127.0.0.4', allowed: false },
    { allow: [], deny: ['127.0.0.4/32'], address: '::ffff:127.0.0.4', allowed: false },
    { allow: [], deny: ['127.0.0.4/32'], address: '127.0.0.5', allowed: true },
    { allow: [], deny: ['0.0.0.0/0'], address: '8.8.8.8', allowed: false },
    { allow: [], deny: ['0.0.0.0/0'], address: '2001:db8::1', allowed: true },
    { allow: [], deny: ['::/0'], address: '2001:db8::1', allowed: false },
    { allow: [], deny: ['::/0'], address: '127.0.0.1', allowed: true },
    { allow: ['2001:db8::/32'], deny: ['2001:db8:bad::/48'], address: '2001:db8:1::1', allowed: true },
    { allow: ['2001:db8::/32'], deny: ['2001:db8:bad::/48'], address: '2001:db8:bad::7', allowed: false },
    { allow: ['2001:db8::/32'], deny: [], address: '2001:db9::1', allowed: false },
    { allow: ['::1'], deny: [], address: '::1', allowed: true },
    { allow: ['::1'], deny: [], address: '::2', allowed: false },
    { allow: ['::ffff:10.0.0.0/104'], deny: [], address: '10.2.3.4', allowed: true },
  ];
  it.each(cases)('allow $allow deny $deny: $address → $allowed', ({ allow, deny, address, allowed }) => {
    expect(aclAllowsText(Acl.fromText(allow, deny), address)).toBe(allowed);
  });

  it('throws a RangeError naming a bad block', () => {
    expect(() => Acl.fromText(['10.0.0.1/8'], [])).toThrow(/host bits set/);
  });

  it('agrees with a linear scan over 2,000 random blocks for 20,000 random addresses', () => {
    const random = prng(7);
    const dotted = (n: number): string => `${Math.floor(n / 2 ** 24)}.${Math.floor(n / 2 ** 16) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`;
    const block = (): string => {
      const prefix = 4 + below(random, 29);
      const size = 2 ** (32 - prefix);
      const address = below(random, 2 ** 32);
      return `${dotted(address - (address % size))}/${prefix}`;
    };
    const allowText = Array.from({ length: 1000 }, block);
    const denyText = Array.from({ length: 1000 }, block);
    const acl = Acl.fromText(allowText, denyText);
    const toRange = (text: string): [number, number] => {
      const [address, prefix] = text.split('/') as [string, string];
      const start = address.split('.').reduce((n, part) => n * 256 + Number(part), 0);
      return [start, start + 2 ** (32 - Number(prefix)) - 1];
    };
    const allowRanges = allowText.map(toRange);
    const denyRanges = denyText.map(toRange);
    const inAny = (ranges: [number, number][], n: number): boolean => ranges.some(([a, b]) => n >= a && n <= b);
    const wrong: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      const n = below(random, 2 ** 32);
      const expected = !inAny(denyRanges, n) && inAny(allowRanges, n);
      if (aclAllowsText(acl, dotted(n)) !== expected) wrong.push(dotted(n));
    }
    expect(wrong).toEqual([]);
  });

  it('walks at most 33 nodes for IPv4 and 129 for IPv6, whether the list holds 10 blocks or 10,000', () => {
    const v4 = (n: number): string[] => Array.from({ length: n }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.0/24`);
    const v6 = (n: number): string[] => Array.from({ length: n }, (_, i) => `2001:db8:${i.toString(16)}::/48`);
    const few = Acl.fromText(v6(10), v4(10));
    const many = Acl.fromText(v6(10_000), v4(10_000));
    expect(many.nodes).toBeGreaterThan(100 * few.nodes);
    const random = prng(3);
    const words = new Int32Array(4);
    let deepest = { 4: 0, 6: 0 };
    for (let i = 0; i < 5000; i++) {
      const text = i % 2 === 0 ? `10.${below(random, 64)}.${below(random, 256)}.${below(random, 256)}` : `2001:db8:${below(random, 0x3000).toString(16)}::${below(random, 65536).toString(16)}`;
      const family = parseIpInto(text, words) as 4 | 6;
      deepest = { ...deepest, [family]: Math.max(deepest[family], many.depth(family, words), few.depth(family, words)) };
    }
    expect(deepest[4]).toBeLessThanOrEqual(33);
    expect(deepest[6]).toBeLessThanOrEqual(129);
    // The bound is reached: these lookups do walk a /24 or /48 path, not stop at the root.
    expect(deepest[4]).toBeGreaterThanOrEqual(25);
    expect(deepest[6]).toBeGreaterThanOrEqual(49);
  });
});
