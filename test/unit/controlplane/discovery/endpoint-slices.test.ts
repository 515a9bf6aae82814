import { describe, expect, it } from 'vitest';
import {
  endpointCondition,
  endpointsFromSlices,
  slicePort,
  type EndpointConditionsView,
  type EndpointSliceView,
  type EndpointView,
} from '../../../../src/controlplane/discovery/endpoint-slices.ts';
import type { EndpointCondition } from '../../../../src/controlplane/discovery/types.ts';

const HTTP = [{ name: 'http', port: 8080, protocol: 'TCP' }];
const ep = (address: string, conditions?: EndpointConditionsView | null): EndpointView =>
  conditions === undefined ? { addresses: [address] } : { addresses: [address], conditions };
const v4 = (endpoints: EndpointView[], ports: EndpointSliceView['ports'] = HTTP): EndpointSliceView => ({ addressType: 'IPv4', endpoints, ports });
const answer = (...pairs: [string, EndpointCondition][]) => pairs.map(([address, condition]) => ({ address, weight: 1, tier: 0, condition }));

const READY = { ready: true, serving: true, terminating: false };
const TERMINATING = { ready: false, serving: true, terminating: true };
const GONE_DARK = { ready: false, serving: false, terminating: true };
const NOT_READY = { ready: false, serving: false, terminating: false };

describe('endpointCondition', () => {
  it.each<[string, EndpointConditionsView | null | undefined, EndpointCondition]>([
    ['no conditions at all (nil ready = true)', undefined, 'ready'],
    ['null conditions', null, 'ready'],
    ['empty conditions', {}, 'ready'],
    ['ready', READY, 'ready'],
    ['ready even while terminating (publishNotReadyAddresses)', { ready: true, terminating: true }, 'ready'],
    ['serving and terminating', TERMINATING, 'terminating'],
    ['terminating with serving nil (nil serving = true)', { ready: false, terminating: true }, 'terminating'],
    ['terminating, no longer serving', GONE_DARK, 'not_ready'],
    ['not ready, not terminating', NOT_READY, 'not_ready'],
    ['not ready, serving nil, terminating nil', { ready: false }, 'not_ready'],
    ['serving but not ready and not terminating', { ready: false, serving: true, terminating: false }, 'not_ready'],
  ])('%s', (_name, conditions, expected) => {
    expect(endpointCondition(conditions)).toBe(expected);
  });
});

describe('slicePort', () => {
  const ports = [
    { name: 'http', port: 8080 },
    { name: 'metrics', port: 9090 },
    { name: '', port: 7000 },
  ];
  it.each<[string, Parameters<typeof slicePort>[0], string | number, number | undefined]>([
    ['by name', ports, 'metrics', 9090],
    ['by number', ports, 8080, 8080],
    ['a name the slice does not have', ports, 'grpc', undefined],
    ['a number the slice does not have', ports, 443, undefined],
    ['a named port with a nil number ("all ports")', [{ name: 'http', port: null }], 'http', undefined],
    ['no ports', null, 'http', undefined],
    ['empty ports', [], 80, undefined],
  ])('%s', (_name, list, selector, expected) => {
    expect(slicePort(list, selector)).toBe(expected);
  });
});

describe('endpointsFromSlices', () => {
  it('follows the documented lifecycle of one pod: ready -> serving+terminating -> gone', () => {
    const steps: [string, EndpointSliceView[], ReturnType<typeof answer>][] = [
      ['ready', [v4([ep('10.0.0.1', READY), ep('10.0.0.2', READY)])], answer(['10.0.0.1:8080', 'ready'], ['10.0.0.2:8080', 'ready'])],
      ['terminating', [v4([ep('10.0.0.1', TERMINATING), ep('10.0.0.2', READY)])], answer(['10.0.0.1:8080', 'terminating'], ['10.0.0.2:8080', 'ready'])],
      ['stops serving', [v4([ep('10.0.0.1', GONE_DARK), ep('10.0.0.2', READY)])], answer(['10.0.0.1:8080', 'not_ready'], ['10.0.0.2:8080', 'ready'])],
      ['gone from the slice', [v4([ep('10.0.0.2', READY)])], answer(['10.0.0.2:8080', 'ready'])],
    ];
    for (const [, slices, expected] of steps) expect(endpointsFromSlices(slices, 'http')).toEqual(expected);
  });

  it.each<[string, EndpointSliceView[], string | number, ReturnType<typeof answer>]>([
    ['no slices', [], 'http', []],
    ['a slice with no endpoints (null)', [{ addressType: 'IPv4', endpoints: null, ports: HTTP }], 'http', []],
    ['nil conditions count as ready', [v4([ep('10.0.0.1'), ep('10.0.0.2', null)])], 'http', answer(['10.0.0.1:8080', 'ready'], ['10.0.0.2:8080', 'ready'])],
    [
      'every slice of the service is merged',
      [v4([ep('10.0.0.1', READY)]), v4([ep('10.0.0.2', READY)])],
      'http',
      answer(['10.0.0.1:8080', 'ready'], ['10.0.0.2:8080', 'ready']),
    ],
    [
      'a duplicate across slices is reported once, with its best condition',
      [v4([ep('10.0.0.1', NOT_READY)]), v4([ep('10.0.0.1', READY)]), v4([ep('10.0.0.1', TERMINATING)])],
      'http',
      answer(['10.0.0.1:8080', 'ready']),
    ],
    ['a duplicate in one slice is reported once', [v4([ep('10.0.0.1', TERMINATING), ep('10.0.0.1', NOT_READY)])], 'http', answer(['10.0.0.1:8080', 'terminating'])],
    [
      'the port comes from each slice: the same name with different numbers (target port rollout)',
      [v4([ep('10.0.0.1')], [{ name: 'http', port: 8080 }]), v4([ep('10.0.0.2')], [{ name: 'http', port: 8081 }])],
      'http',
      answer(['10.0.0.1:8080', 'ready'], ['10.0.0.2:8081', 'ready']),
    ],
    [
      'the same address on two ports of different slices is two endpoints',
      [v4([ep('10.0.0.1')], [{ name: 'http', port: 8080 }]), v4([ep('10.0.0.1')], [{ name: 'http', port: 8081 }])],
      'http',
      answer(['10.0.0.1:8080', 'ready'], ['10.0.0.1:8081', 'ready']),
    ],
    [
      'multiple ports: the named one is chosen',
      [v4([ep('10.0.0.1')], [{ name: 'metrics', port: 9090 }, { name: 'http', port: 8080 }])],
      'http',
      answer(['10.0.0.1:8080', 'ready']),
    ],
    ['multiple ports: by number', [v4([ep('10.0.0.1')], [{ name: 'metrics', port: 9090 }, { name: 'http', port: 8080 }])], 9090, answer(['10.0.0.1:9090', 'ready'])],
    ['a slice without the port contributes nothing', [v4([ep('10.0.0.1')], [{ name: 'metrics', port: 9090 }]), v4([ep('10.0.0.2')])], 'http', answer(['10.0.0.2:8080', 'ready'])],
    [
      'IPv6 addresses are bracketed and canonical (RFC 5952)',
      [{ addressType: 'IPv6', endpoints: [ep('2001:DB8:0:0::1'), ep('fd00::2')], ports: HTTP }],
      'http',
      answer(['[2001:db8::1]:8080', 'ready'], ['[fd00::2]:8080', 'ready']),
    ],
    [
      'dual-stack: the IPv4 and the IPv6 slice both count',
      [v4([ep('10.0.0.1')]), { addressType: 'IPv6', endpoints: [ep('fd00::1')], ports: HTTP }],
      'http',
      answer(['10.0.0.1:8080', 'ready'], ['[fd00::1]:8080', 'ready']),
    ],
    ['FQDN slices are skipped (deprecated; kube-proxy skips them too)', [{ addressType: 'FQDN', endpoints: [ep('db.example.com')], ports: HTTP }], 'http', []],
    ['an address that does not match the slice type is skipped', [v4([ep('fd00::1'), ep('not-an-ip'), ep('10.0.0.3')])], 'http', answer(['10.0.0.3:8080', 'ready'])],
    ['only the first of an endpoint\'s addresses is used (they are fungible)', [v4([{ addresses: ['10.0.0.1', '10.0.0.9'] }])], 'http', answer(['10.0.0.1:8080', 'ready'])],
    ['an endpoint without addresses is skipped', [v4([{ addresses: [] }])], 'http', []],
    ['the answer is sorted by address whatever the slice order', [v4([ep('10.0.0.3'), ep('10.0.0.1')]), v4([ep('10.0.0.2')])], 'http', answer(['10.0.0.1:8080', 'ready'], ['10.0.0.2:8080', 'ready'], ['10.0.0.3:8080', 'ready'])],
  ])('%s', (_name, slices, selector, expected) => {
    expect(endpointsFromSlices(slices, selector)).toEqual(expected);
  });
});
