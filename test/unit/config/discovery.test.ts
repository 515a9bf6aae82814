import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/shared/config/load.ts';
import { CONFIG_FILE, errorsOf, yaml } from '../../helpers/config.ts';

const LISTENERS = ['listeners:', '  - {name: api, listen: 127.0.0.1:8080, cluster: api}'];

/** A config whose one cluster `api` has the given lines (indented under it); line 5 is the first. */
function cluster(...lines: string[]): string {
  return yaml(...LISTENERS, 'clusters:', '  - name: api', ...lines.map((line) => `    ${line}`));
}

describe('discovery config', () => {
  it('fills in the DNS defaults and leaves the cluster without static backends', () => {
    const config = parseConfig(cluster('discovery: {type: dns, name: _api._tcp.service.consul, record: srv}'), CONFIG_FILE);
    expect(config.clusters[0]?.backends).toEqual([]);
    expect(config.clusters[0]?.discovery).toEqual({
      type: 'dns',
      name: '_api._tcp.service.consul',
      record: 'srv',
      refresh: { min: 1_000, max: 30_000, default: 5_000 },
      hold_obsolete: 30_000,
      hold_failure: 0,
    });
  });

  it('reads every DNS key, durations in milliseconds', () => {
    const config = parseConfig(
      cluster(
        'discovery:',
        '  type: dns',
        '  name: api.service.consul.',
        '  record: aaaa',
        '  port: 8080',
        '  resolvers: [127.0.0.1:8600, "[::1]:53"]',
        '  refresh: {min: 500ms, max: 1m, default: 10s}',
        '  hold_obsolete: 2m',
        '  hold_failure: 5m',
      ),
      CONFIG_FILE,
    );
    expect(config.clusters[0]?.discovery).toEqual({
      type: 'dns',
      name: 'api.service.consul.',
      record: 'aaaa',
      port: 8080,
      resolvers: ['127.0.0.1:8600', '[::1]:53'],
      refresh: { min: 500, max: 60_000, default: 10_000 },
      hold_obsolete: 120_000,
      hold_failure: 300_000,
    });
  });

  it('reads a Kubernetes source with a named or numbered port', () => {
    const named = parseConfig(cluster('discovery: {type: kubernetes, namespace: shop, service: web, port: http, kubeconfig: ~/.kube/config}'), CONFIG_FILE);
    expect(named.clusters[0]?.discovery).toEqual({ type: 'kubernetes', namespace: 'shop', service: 'web', port: 'http', kubeconfig: '~/.kube/config' });
    const numbered = parseConfig(cluster('discovery: {type: kubernetes, namespace: shop, service: web, port: 8080}'), CONFIG_FILE);
    expect(numbered.clusters[0]?.discovery).toEqual({ type: 'kubernetes', namespace: 'shop', service: 'web', port: 8080 });
  });

  it('accepts an empty backends list beside discovery', () => {
    const config = parseConfig(cluster('backends: []', 'discovery: {type: dns, name: api.internal, record: a, port: 80}'), CONFIG_FILE);
    expect(config.clusters[0]?.backends).toEqual([]);
  });

  const refused: [string, string[], string[]][] = [
    [
      'backends and discovery together',
      ['backends: [{address: 127.0.0.1:9001}]', 'discovery: {type: dns, name: api.internal, record: a, port: 80}'],
      ['config.yaml:6:16 clusters[0].discovery: give either backends or discovery, not both'],
    ],
    [
      'an unknown key in the discovery block',
      ['discovery: {type: dns, name: api.internal, record: a, port: 80, ttl: 5s}'],
      ['config.yaml:5:69 clusters[0].discovery: unknown key "ttl"; allowed: type, name, record, port, resolvers, refresh, hold_obsolete, hold_failure'],
    ],
    [
      'a misspelt key, with a guess',
      ['discovery: {type: dns, name: api.internal, record: a, port: 80, hold_obsolet: 5s}'],
      ['config.yaml:5:69 clusters[0].discovery: unknown key "hold_obsolet" (did you mean "hold_obsolete"?)'],
    ],
    [
      'record srv without a _service._proto name',
      ['discovery: {type: dns, name: api.service.consul, record: srv}'],
      ['config.yaml:5:34 clusters[0].discovery.name: record srv needs a name like _service._proto.domain (e.g. _api._tcp.service.consul)'],
    ],
    [
      'record a without a port',
      ['discovery: {type: dns, name: api.internal, record: a}'],
      ['config.yaml:5:16 clusters[0].discovery.port: record a needs a port: A and AAAA records carry none'],
    ],
    [
      'record srv with a port',
      ['discovery: {type: dns, name: _api._tcp.internal, record: srv, port: 80}'],
      ['config.yaml:5:73 clusters[0].discovery.port: port applies only to record a or aaaa: SRV records carry their own ports'],
    ],
    [
      'a missing record type',
      ['discovery: {type: dns, name: api.internal, port: 80}'],
      ['config.yaml:5:16 clusters[0].discovery.record: missing required key'],
    ],
    [
      'an unknown record type',
      ['discovery: {type: dns, name: api.internal, record: cname, port: 80}'],
      ['config.yaml:5:56 clusters[0].discovery.record: expected a, aaaa or srv'],
    ],
    [
      'an unknown source type',
      ['discovery: {type: consul, name: api}'],
      ['config.yaml:5:23 clusters[0].discovery.type: expected dns or kubernetes'],
    ],
    [
      'a resolver given by name',
      ['discovery: {type: dns, name: api.internal, record: a, port: 80, resolvers: [dns.internal:53]}'],
      ['config.yaml:5:81 clusters[0].discovery.resolvers[0]: expected ip:port, like 127.0.0.1:53 or [::1]:53'],
    ],
    [
      'a refresh window upside down',
      ['discovery: {type: dns, name: api.internal, record: a, port: 80, refresh: {min: 10s, max: 1s}}'],
      ['config.yaml:5:94 clusters[0].discovery.refresh.max: max (1s) must not be shorter than min (10s)'],
    ],
    [
      'a refresh default outside the window',
      ['discovery: {type: dns, name: api.internal, record: a, port: 80, refresh: {max: 2s}}'],
      ['config.yaml:5:78 clusters[0].discovery.refresh.default: default (5s) must lie between min and max'],
    ],
    [
      'a name that is not a DNS name',
      ['discovery: {type: dns, name: "api service", record: a, port: 80}'],
      ['config.yaml:5:34 clusters[0].discovery.name: expected a DNS name like api.service.consul'],
    ],
    [
      'a Kubernetes port that is neither a number nor a port name',
      ['discovery: {type: kubernetes, namespace: shop, service: web, port: Http_1}'],
      ['config.yaml:5:72 clusters[0].discovery.port: expected a port number (1-65535) or the name of a Service port'],
    ],
    [
      'a Kubernetes port number out of range',
      ['discovery: {type: kubernetes, namespace: shop, service: web, port: 0}'],
      ['config.yaml:5:72 clusters[0].discovery.port: expected a port number (1-65535) or the name of a Service port'],
    ],
    [
      'a Kubernetes source without its service',
      ['discovery: {type: kubernetes, namespace: shop, port: http}'],
      ['config.yaml:5:16 clusters[0].discovery.service: missing required key'],
    ],
  ];

  it.each(refused)('refuses %s, with file:line:col', (_name, lines, expected) => {
    expect(errorsOf(cluster(...lines))).toEqual(expected);
  });
});
