import { describe, expect, it } from 'vitest';
import { clientId } from '../../../src/dataplane/udp-client-id.ts';
import { parseIpv4 } from '../../../src/shared/ip-address.ts';

describe('clientId', () => {
  it.each<[string, number, number | string]>([
    ['127.0.0.1', 53, 0x7f000001 * 65536 + 53],
    ['0.0.0.0', 0, 0],
    ['255.255.255.255', 65535, 2 ** 48 - 1],
    ['10.1.2.3', 40000, (((10 * 256 + 1) * 256 + 2) * 256 + 3) * 65536 + 40000],
    ['::1', 53, '::1:53'],
    ['::ffff:127.0.0.1', 53, '::ffff:127.0.0.1:53'],
    ['fe80::1%lo', 9, 'fe80::1%lo:9'],
  ])('%s port %d → %s', (address, port, expected) => {
    expect(clientId(address, port)).toBe(expected);
  });

  it.each([['1.2.3'], ['1.2.3.4.5'], ['1..2.3'], ['.1.2.3'], ['1.2.3.'], ['256.0.0.1'], ['01.2.3.4'], ['1.2.3.04'], ['1.2.3.4 '], [''], ['a.b.c.d']])(
    'takes %j for no IPv4 address (string form instead)',
    (address) => {
      expect(parseIpv4(address)).toBe(-1);
      expect(clientId(address, 7)).toBe(`${address}:7`);
    },
  );

  it('gives different clients different ids (a reply must reach only the client that sent)', () => {
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const seen = new Map<number | string, string>();
    for (let i = 0; i < 20_000; i++) {
      // Few octets and ports, so the same pairs come up again: ids must match exactly when the pair does.
      const address = [random(3), random(3), random(300) % 256, random(4)].join('.');
      const port = random(5) * 16_383;
      const pair = `${address}:${port}`;
      const id = clientId(address, port);
      expect(seen.get(id) ?? pair).toBe(pair);
      seen.set(id, pair);
    }
    expect(seen.size).toBeGreaterThan(500);
  });
});
