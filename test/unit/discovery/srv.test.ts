import { describe, expect, it } from 'vitest';
import { addressEndpoints, mapSrvWeights, srvEndpoints } from '../../../src/controlplane/discovery/srv.ts';

describe('mapSrvWeights (RFC 2782 weights of one tier to weights >= 1)', () => {
  const table: [string, number[], number[]][] = [
    ['all zero: equal shares', [0, 0, 0], [1, 1, 1]],
    ['no zero: as written', [10, 20, 70], [10, 20, 70]],
    ['a zero among non-zeros: the smallest share', [0, 1, 3], [1, 100, 300]],
    ['non-zeros scaled into the weight range', [65_535, 32_768], [10_000, 5_000]],
    ['a zero beside the largest weight still gets 1, the rest scaled', [0, 65_535], [1, 10_000]],
    ['a tiny weight beside a huge one never falls to 0', [1, 65_535], [1, 10_000]],
    ['one record', [0], [1]],
  ];
  it.each(table)('%s', (_name, weights, expected) => {
    expect(mapSrvWeights(weights)).toEqual(expected);
  });
});

describe('srvEndpoints', () => {
  const hosts: Record<string, string[]> = {
    'a.example.': ['10.0.0.1'],
    'b.example': ['10.0.0.2', '2001:db8:0:0::2'],
    'c.example': ['10.0.0.3'],
    'none.example': [],
  };
  const addressesOf = (target: string): string[] => hosts[target] ?? [];

  it('makes tiers from priorities, lowest first, whatever their values', () => {
    const endpoints = srvEndpoints(
      [
        { priority: 20, weight: 5, port: 80, target: 'c.example' },
        { priority: 10, weight: 0, port: 80, target: 'a.example.' },
        { priority: 10, weight: 1, port: 8080, target: 'b.example' },
      ],
      addressesOf,
    );
    expect(endpoints).toEqual([
      { address: '10.0.0.1:80', weight: 1, tier: 0, condition: 'ready' },
      { address: '10.0.0.2:8080', weight: 100, tier: 0, condition: 'ready' },
      { address: '10.0.0.3:80', weight: 5, tier: 1, condition: 'ready' },
      { address: '[2001:db8::2]:8080', weight: 100, tier: 0, condition: 'ready' },
    ]);
  });

  it('skips the "." target and targets without addresses', () => {
    const endpoints = srvEndpoints(
      [
        { priority: 0, weight: 1, port: 80, target: '.' },
        { priority: 0, weight: 1, port: 80, target: 'none.example' },
        { priority: 1, weight: 1, port: 80, target: 'c.example' },
      ],
      addressesOf,
    );
    // The tier comes from the priority values of usable records only.
    expect(endpoints).toEqual([{ address: '10.0.0.3:80', weight: 1, tier: 1, condition: 'ready' }]);
  });

  it('keeps an address named twice at its lowest tier and highest weight there', () => {
    const endpoints = srvEndpoints(
      [
        { priority: 2, weight: 50, port: 80, target: 'c.example' },
        { priority: 1, weight: 3, port: 80, target: 'c.example' },
        { priority: 1, weight: 7, port: 80, target: 'c.example' },
      ],
      addressesOf,
    );
    expect(endpoints).toEqual([{ address: '10.0.0.3:80', weight: 7, tier: 0, condition: 'ready' }]);
  });
});

describe('addressEndpoints', () => {
  it('puts every address on the port, canonical and without duplicates', () => {
    expect(addressEndpoints(['10.0.0.2', '2001:DB8::1', '10.0.0.2', '2001:db8:0::1'], 8080)).toEqual([
      { address: '10.0.0.2:8080', weight: 1, tier: 0, condition: 'ready' },
      { address: '[2001:db8::1]:8080', weight: 1, tier: 0, condition: 'ready' },
    ]);
  });
});
