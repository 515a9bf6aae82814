import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/shared/config/load.ts';
import { CONFIG_FILE, errorsOf, yaml } from '../../helpers/config.ts';

const FILE = CONFIG_FILE;


const CLUSTERS = [
  'clusters:',
  '  - name: web',
  '    backends: [{address: 127.0.0.1:9001}]',
  '  - name: api',
  '    send_proxy: v2',
  '    backends: []',
];

function listener(...lines: string[]): string {
  return yaml('listeners:', '  - name: edge', '    listen: 127.0.0.1:8443', ...lines.map((l) => `    ${l}`), ...CLUSTERS);
}


describe('edge keys on a good config', () => {
  it('reads limits, acl, accept_proxy, sni_routes and send_proxy', () => {
    const config = parseConfig(
      listener(
        'cluster: web',
        'limits: {per_ip_connections: 100, per_ip_rate: 50/s, burst: 100, max_connections: 50000}',
        'acl: {allow: [10.0.0.0/8, "2001:DB8::/32"], deny: [10.1.2.3]}',
        'accept_proxy: true',
        'sni_routes: [{server_name: API.example.com, cluster: api}, {server_name: "*.example.com", cluster: web}]',
      ),
      FILE,
    );
    expect(config.listeners[0]).toEqual({
      name: 'edge',
      protocol: 'tcp',
      listen: '127.0.0.1:8443',
      cluster: 'web',
      limits: { per_ip_connections: 100, per_ip_rate: 50, burst: 100, max_connections: 50000 },
      acl: { allow: ['10.0.0.0/8', '2001:db8::/32'], deny: ['10.1.2.3/32'] },
      accept_proxy: true,
      sni_routes: [
        { server_name: 'api.example.com', cluster: 'api' },
        { server_name: '*.example.com', cluster: 'web' },
      ],
    });
    expect(config.clusters[1]?.send_proxy).toBe('v2');
    expect(config.clusters[0]?.send_proxy).toBeUndefined();
  });

  it.each([
    ['600/m', 10, 10],
    ['36/h', 0.01, 1],
    ['2.5/s', 2.5, 3],
  ])('reads per_ip_rate %s as %d/s with a default burst of %d (one second of it)', (text, perSecond, burst) => {
    const config = parseConfig(listener('cluster: web', `limits: {per_ip_rate: ${text}}`), FILE);
    expect(config.listeners[0]?.limits).toEqual({ per_ip_rate: perSecond, burst });
  });

  it('lets sni_routes stand without a default cluster', () => {
    const config = parseConfig(listener('sni_routes: [{server_name: a.example.com, cluster: api}]'), FILE);
    expect(config.listeners[0]?.cluster).toBeUndefined();
  });

  it('leaves the edge keys out of a plain listener', () => {
    const config = parseConfig(listener('cluster: web'), FILE);
    expect(Object.keys(config.listeners[0] ?? {}).sort()).toEqual(['cluster', 'listen', 'name', 'protocol']);
  });
});

describe('edge keys on a broken config', () => {
  it.each([
    ['a rate without a unit', 'limits: {per_ip_rate: 50}', '5:27 listeners[0].limits.per_ip_rate: expected a rate like 50/s, 600/m or 10/h'],
    ['a rate per day', 'limits: {per_ip_rate: 5/d}', '5:27 listeners[0].limits.per_ip_rate: expected a rate like 50/s, 600/m or 10/h'],
    ['a rate too fast to measure', 'limits: {per_ip_rate: 20000/s}', '5:27 listeners[0].limits.per_ip_rate: must be between 1/h and 10000/s'],
    ['a burst without a rate', 'limits: {burst: 10}', '5:21 listeners[0].limits.burst: burst needs per_ip_rate'],
    ['a burst that takes hours to refill', 'limits: {per_ip_rate: 1/m, burst: 100}', '5:39 listeners[0].limits.burst: a burst of 100 at per_ip_rate takes more than 1h to refill'],
    ['zero connections', 'limits: {per_ip_connections: 0}', '5:34 listeners[0].limits.per_ip_connections: expected an integer from 1 to 1000000'],
    ['a typo in limits', 'limits: {per_ip_conections: 5}', '5:14 listeners[0].limits: unknown key "per_ip_conections" (did you mean "per_ip_connections"?)'],
    ['host bits in an acl block', 'acl: {deny: [10.0.0.1/8]}', '5:18 listeners[0].acl.deny[0]: "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?'],
    ['a name in an acl', 'acl: {allow: [example.com]}', '5:19 listeners[0].acl.allow[0]: "example.com" is not a CIDR block like 10.0.0.0/8 or 2001:db8::/32'],
    ['accept_proxy as text', 'accept_proxy: yes please', '5:19 listeners[0].accept_proxy: expected true, false or {trusted: [CIDR, ...]}'],
    ['a space in a server name', 'sni_routes: [{server_name: "api example", cluster: api}]', '5:32 listeners[0].sni_routes[0].server_name: expected a host name like api.example.com, or *.example.com for its subdomains'],
    ['a wildcard inside a name', 'sni_routes: [{server_name: "a.*.com", cluster: api}]', '5:32 listeners[0].sni_routes[0].server_name: expected a host name like api.example.com, or *.example.com for its subdomains'],
    ['an unknown sni cluster', 'sni_routes: [{server_name: a.com, cluster: nope}]', '5:48 listeners[0].sni_routes[0].cluster: unknown cluster "nope"; known: web, api'],
    ['an empty sni_routes', 'sni_routes: []', '5:17 listeners[0].sni_routes: expected at least one route; leave sni_routes out for none'],
  ])('reports %s', (_name, line, expected) => {
    expect(errorsOf(listener('cluster: web', line))).toEqual([`config.yaml:${expected}`]);
  });

  it('reports a duplicate server name, whatever its case', () => {
    expect(errorsOf(listener('cluster: web', 'sni_routes: [{server_name: a.com, cluster: api}, {server_name: A.com, cluster: web}]'))).toEqual([
      'config.yaml:5:68 listeners[0].sni_routes[1].server_name: duplicate server_name "a.com" (first at sni_routes[0])',
    ]);
  });

  it('reports a listener with neither cluster nor sni_routes', () => {
    expect(errorsOf(listener())).toEqual(['config.yaml:2:5 listeners[0].cluster: missing required key']);
  });

  it('reports send_proxy v3', () => {
    const text = yaml('listeners: [{name: a, listen: "127.0.0.1:1", cluster: web}]', 'clusters:', '  - name: web', '    send_proxy: v3');
    expect(errorsOf(text)).toEqual(['config.yaml:4:17 clusters[0].send_proxy: expected v1 or v2']);
  });

  it('refuses more than 10,000 acl blocks on one listener', () => {
    const blocks = Array.from({ length: 10_001 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`).join(', ');
    expect(errorsOf(listener('cluster: web', `acl: {deny: [${blocks}]}`))).toEqual([
      'config.yaml:5:10 listeners[0].acl: at most 10000 blocks (allow and deny together); use shorter prefixes',
    ]);
  });
});
