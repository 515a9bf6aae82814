import { describe, expect, it } from 'vitest';
import { decodeSnapshot, encodeSnapshot } from '../../../src/shared/snapshot/codec.ts';
import { testCluster, testListener, testSnapshot } from '../../helpers/snapshot.ts';

const edge = testSnapshot({
  version: 3,
  clusters: [testCluster({ name: 'api', sendProxy: 'v2' }), testCluster({ name: 'web' })],
  listeners: [
    testListener({
      name: 'tls',
      cluster: null,
      routes: [],
      acceptProxy: true,
      limits: { perIpConnections: 10, perIpRate: 2.5, burst: 5, maxConnections: 0 },
      acl: { allow: ['10.0.0.0/8'], deny: ['2001:db8::/32'] },
      sniRoutes: [{ serverName: '*.example.com', cluster: 'web' }],
    }),
    testListener({ name: 'plain' }),
  ],
});

const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

describe('snapshot codec: edge fields', () => {
  it('round-trips every edge field, and leaves a plain listener plain', () => {
    expect(decodeSnapshot(encodeSnapshot(edge))).toEqual(edge);
    expect(Object.keys(decodeSnapshot(encodeSnapshot(edge)).listeners[1] ?? {})).toEqual(['name', 'cluster', 'routes']);
  });

  it.each([
    ['a null cluster without sniRoutes', { name: 'x', cluster: null, routes: [] }, '$.listeners[0].cluster may be null only with sniRoutes'],
    ['a bad acl block', { name: 'x', cluster: 'web', routes: [], acl: { allow: ['10.0.0.1/8'], deny: [] } }, '$.listeners[0].acl.allow[0]: "10.0.0.1/8" has host bits set'],
    ['acceptProxy as a string', { name: 'x', cluster: 'web', routes: [], acceptProxy: 'yes' }, '$.listeners[0].acceptProxy must be a boolean'],
    ['a negative rate', { name: 'x', cluster: 'web', routes: [], limits: { perIpConnections: 0, perIpRate: -1, burst: 0, maxConnections: 0 } }, '$.listeners[0].limits.perIpRate must be a finite number >= 0'],
    ['a route without a cluster', { name: 'x', cluster: 'web', routes: [], sniRoutes: [{ serverName: 'a' }] }, '$.listeners[0].sniRoutes[0].cluster must be a string'],
  ])('refuses %s', (_name, listener, message) => {
    expect(() => decodeSnapshot(bytes({ ...edge, listeners: [listener] }))).toThrow(message);
  });

  it('refuses an unknown send_proxy version', () => {
    const clusters = [{ ...edge.clusters[0], sendProxy: 'v3' }];
    expect(() => decodeSnapshot(bytes({ ...edge, clusters }))).toThrow('$.clusters[0].sendProxy must be one of v1, v2');
  });
});
