import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, it, expect } from 'vitest';
import { ConfigError, formatConfigIssue, loadConfig, parseConfig } from '../../../src/shared/config/load.ts';
import type { Config } from '../../../src/shared/config/schema.ts';
import { SluiceError } from '../../../src/shared/errors.ts';
import { CONFIG_FILE, errorsOf, yaml } from '../../helpers/config.ts';

const FILE = CONFIG_FILE;



const LISTENERS = ['listeners:', '  - name: web', '    listen: 127.0.0.1:8080', '    cluster: web'];
const UDP_LISTENER = ['listeners:', '  - name: dns', '    protocol: udp', '    listen: 127.0.0.1:5353', '    cluster: web'];
const CLUSTERS = ['clusters:', '  - name: web', '    backends:', '      - {address: 127.0.0.1:9001, weight: 1}'];

describe('parseConfig on a good config', () => {
  it('fills in every default around the few required keys', () => {
    const config: Config = parseConfig(yaml(...LISTENERS, ...CLUSTERS), FILE);
    expect(config).toEqual({
      workers: 'auto',
      admin: { listen: '127.0.0.1:9090', metrics_backend_limit: 20_000 },
      shutdown: { drain_timeout: 30_000, delay: 0 },
      access_log: { enabled: false, sampling: 1 },
      capacity: { backends: 16_384 },
      listeners: [{ name: 'web', protocol: 'tcp', listen: '127.0.0.1:8080', cluster: 'web' }],
      clusters: [
        {
          name: 'web',
          algorithm: 'round_robin',
          connect_timeout: 2_000,
          idle_timeout: 300_000,
          health_check: { type: 'none' },
          passive: { consecutive_failures: 5 },
          outlier: { base_ejection_time: 30_000, max_ejection_time: 300_000 },
          drain_timeout: 30_000,
          slow_start: 0,
          panic_mode: 'refuse',
          backends: [{ address: '127.0.0.1:9001', weight: 1 }],
        },
      ],
    });
  });

  it('reads every key, turning durations into milliseconds and keeping addresses as written', () => {
    const config = parseConfig(
      yaml(
        'workers: 4',
        'admin: {listen: "[::1]:9191", token_env: SLUICE_ADMIN_TOKEN, metrics_backend_limit: 500}',
        'state_file: ./sluice-state.json',
        'shutdown: {drain_timeout: 1.5s, delay: 500ms}',
        'access_log: {enabled: true, sampling: 0.25, path: /var/log/sluice/access.log}',
        'listeners:',
        '  - {name: web, protocol: tcp, listen: "0.0.0.0:8080", cluster: web}',
        '  - {name: api.v2, listen: "localhost:8081", cluster: api}',
        'clusters:',
        '  - name: web',
        '    algorithm: round_robin',
        '    connect_timeout: 250ms',
        '    idle_timeout: 1h',
        '    health_check: {type: tcp, interval: 5s, timeout: 2s, rise: 1, fall: 10, send: ping, expect: pong}',
        '    passive: {consecutive_failures: 1000}',
        '    outlier: {base_ejection_time: 10s, max_ejection_time: 1m}',
        '    drain_timeout: 10s',
        '    slow_start: 30s',
        '    panic_mode: route_all',
        '    backends:',
        '      - {address: 10.0.0.1:80, weight: 0}',
        '      - {address: "[fd00::1]:80", weight: 10000}',
        '  - name: api',
        '    health_check: {type: http, interval: 1s, timeout: 500ms, host: api.example, path: /healthz, expect_status: 204}',
        '    backends: []',
      ),
      FILE,
    );
    expect(config.workers).toBe(4);
    expect(config.admin).toEqual({ listen: '[::1]:9191', token_env: 'SLUICE_ADMIN_TOKEN', metrics_backend_limit: 500 });
    expect(config.state_file).toBe('./sluice-state.json');
    expect(config.shutdown).toEqual({ drain_timeout: 1_500, delay: 500 });
    expect(config.access_log).toEqual({ enabled: true, sampling: 0.25, path: '/var/log/sluice/access.log' });
    expect(config.listeners[1]).toEqual({ name: 'api.v2', protocol: 'tcp', listen: 'localhost:8081', cluster: 'api' });
    expect(config.clusters[0]).toMatchObject({
      connect_timeout: 250,
      idle_timeout: 3_600_000,
      health_check: { type: 'tcp', interval: 5_000, timeout: 2_000, rise: 1, fall: 10, send: 'ping', expect: 'pong' },
      passive: { consecutive_failures: 1000 },
      outlier: { base_ejection_time: 10_000, max_ejection_time: 60_000 },
      drain_timeout: 10_000,
      slow_start: 30_000,
      panic_mode: 'route_all',
      backends: [
        { address: '10.0.0.1:80', weight: 0 },
        { address: '[fd00::1]:80', weight: 10_000 },
      ],
    });
    expect(config.clusters[1]?.health_check).toEqual({
      type: 'http',
      interval: 1_000,
      timeout: 500,
      rise: 2,
      fall: 3,
      host: 'api.example',
      path: '/healthz',
      expect_status: 204,
    });
  });

  it('fills in the defaults of a udp listener', () => {
    const config = parseConfig(yaml(...UDP_LISTENER, ...CLUSTERS), FILE);
    expect(config.listeners[0]).toEqual({
      name: 'dns',
      protocol: 'udp',
      listen: '127.0.0.1:5353',
      cluster: 'web',
      udp: { session_timeout: 30_000, max_sessions: 100_000, max_replies: 0, recv_buffer: 1_048_576, send_buffer: 1_048_576 },
    });
  });

  it('reads every udp setting', () => {
    const config = parseConfig(
      yaml(...UDP_LISTENER, '    udp: {session_timeout: 2s, max_sessions: 1000, max_replies: 1, recv_buffer: 65536, send_buffer: 131072}', ...CLUSTERS),
      FILE,
    );
    expect(config.listeners[0]).toMatchObject({
      udp: { session_timeout: 2_000, max_sessions: 1000, max_replies: 1, recv_buffer: 65_536, send_buffer: 131_072 },
    });
  });

  it('lets a udp and a tcp listener share a port number', () => {
    const config = parseConfig(
      yaml(...UDP_LISTENER, '  - {name: dns-tcp, protocol: tcp, listen: 127.0.0.1:5353, cluster: web}', ...CLUSTERS),
      FILE,
    );
    expect(config.listeners.map((l) => `${l.protocol} ${l.listen}`)).toEqual(['udp 127.0.0.1:5353', 'tcp 127.0.0.1:5353']);
  });

  it("lets the admin API (tcp) share a udp listener's port number", () => {
    const config = parseConfig(yaml('admin: {listen: 127.0.0.1:5353}', ...UDP_LISTENER, ...CLUSTERS), FILE);
    expect(config.admin.listen).toBe('127.0.0.1:5353');
  });

  it('reads a udp health check with a text or a hex payload', () => {
    const config = parseConfig(
      yaml(
        ...LISTENERS,
        ...CLUSTERS,
        '    health_check: {type: udp, send: "hex:12 34 01 00", expect: "hex:1234", interval: 1s, timeout: 300ms}',
        '  - name: text',
        '    health_check: {type: udp, send: ping}',
      ),
      FILE,
    );
    expect(config.clusters[0]?.health_check).toEqual({
      type: 'udp',
      send: 'hex:12 34 01 00',
      expect: 'hex:1234',
      interval: 1_000,
      timeout: 300,
      rise: 2,
      fall: 3,
    });
    expect(config.clusters[1]?.health_check).toEqual({ type: 'udp', send: 'ping', interval: 2_000, timeout: 1_000, rise: 2, fall: 3 });
  });

  it('reads the balancing and traffic policy keys', () => {
    const config = parseConfig(
      yaml(
        'listeners:',
        '  - name: web',
        '    listen: 127.0.0.1:8080',
        '    routes: [{cluster: web, weight: 90}, {cluster: canary, weight: 10}]',
        'clusters:',
        '  - name: web',
        '    algorithm: consistent_hash',
        '    hash_key: source_ip_port',
        '    maglev_table_size: 251',
        '    sticky: {ttl: 10m, max_entries: 500}',
        '    max_connections: 1000',
        '    queue: {size: 5, timeout: 1s}',
        '    backends:',
        '      - {address: 127.0.0.1:9001, weight: 3, max_connections: 10}',
        '  - name: canary',
        '    algorithm: least_connections',
        '    sticky: {}',
        '    backends:',
        '      - {address: 127.0.0.1:9002, max_connections: 7}',
        '    queue: {}',
      ),
      FILE,
    );
    expect(config.listeners[0]).toEqual({
      name: 'web',
      protocol: 'tcp',
      listen: '127.0.0.1:8080',
      routes: [
        { cluster: 'web', weight: 90 },
        { cluster: 'canary', weight: 10 },
      ],
    });
    expect(config.clusters[0]).toMatchObject({
      algorithm: 'consistent_hash',
      hash_key: 'source_ip_port',
      maglev_table_size: 251,
      sticky: { ttl: 600_000, max_entries: 500 },
      max_connections: 1000,
      queue: { size: 5, timeout: 1_000 },
      backends: [{ address: '127.0.0.1:9001', weight: 3, max_connections: 10 }],
    });
    expect(config.clusters[1]).toMatchObject({
      algorithm: 'least_connections',
      sticky: { ttl: 600_000, max_entries: 100_000 },
      queue: { size: 100, timeout: 1_000 },
    });
    expect(config.clusters[1]?.hash_key).toBeUndefined();
  });

  it.each(['round_robin', 'least_connections', 'random', 'power_of_two', 'consistent_hash'])('accepts algorithm %s', (algorithm) => {
    expect(parseConfig(yaml(...LISTENERS, ...CLUSTERS, `    algorithm: ${algorithm}`), FILE).clusters[0]?.algorithm).toBe(algorithm);
  });

  it('fills in the probe defaults of a health check that names only its type', () => {
    const config = parseConfig(
      yaml(...LISTENERS, 'clusters:', '  - name: web', '    health_check: {type: http}'),
      FILE,
    );
    expect(config.clusters[0]?.health_check).toEqual({
      type: 'http',
      interval: 2_000,
      timeout: 1_000,
      rise: 2,
      fall: 3,
      path: '/',
      expect_status: 200,
    });
    expect(config.clusters[0]?.backends).toEqual([]);
  });
});

describe('parseConfig on a broken config', () => {
  it.each<[string, string, string[]]>([
    [
      'an empty file',
      '',
      ['config.yaml:1:1 (root): the file holds no settings; expected a mapping with listeners and clusters'],
    ],
    [
      'a file of comments only',
      yaml('# listeners: []'),
      ['config.yaml:1:1 (root): the file holds no settings; expected a mapping with listeners and clusters'],
    ],
    [
      'a list instead of a mapping',
      yaml('- name: web'),
      ['config.yaml:1:1 (root): expected a mapping'],
    ],
    [
      'bad YAML syntax',
      yaml(...LISTENERS, ...CLUSTERS.slice(0, 3), '      - {address: 127.0.0.1:9001, weight: 1'),
      [
        'config.yaml:9:1 (syntax): flow map in block collection must be sufficiently indented and end with a }',
      ],
    ],
    [
      'tabs as indentation',
      yaml('listeners:', '\t- name: web'),
      [
        'config.yaml:2:1 (syntax): tabs are not allowed as indentation',
        'config.yaml:1:1 clusters: missing required key',
        'config.yaml:2:4 listeners[0].listen: missing required key',
        'config.yaml:2:4 listeners[0].cluster: missing required key',
      ],
    ],
    [
      'two YAML documents',
      yaml(...LISTENERS, '---', ...CLUSTERS),
      [
        'config.yaml:5:1 (syntax): a config file holds one YAML document; remove the extra "---"',
        'config.yaml:1:1 clusters: missing required key',
      ],
    ],
    [
      'a key given twice',
      yaml(...LISTENERS, ...CLUSTERS, 'workers: 2', 'workers: 3'),
      [
        'config.yaml:10:1 (syntax): map keys must be unique',
      ],
    ],
    [
      'missing listeners',
      yaml(...CLUSTERS),
      ['config.yaml:1:1 listeners: missing required key'],
    ],
    [
      'an empty listener list',
      yaml('listeners: []', ...CLUSTERS),
      ['config.yaml:1:12 listeners: at least one listener is required'],
    ],
    [
      'an address without a port',
      yaml('listeners:', '  - name: web', '    listen: 127.0.0.1', '    cluster: web', ...CLUSTERS),
      ['config.yaml:3:13 listeners[0].listen: expected host:port'],
    ],
    [
      'an IPv6 address without brackets',
      yaml('listeners:', '  - name: web', '    listen: "::1:8080"', '    cluster: web', ...CLUSTERS),
      ['config.yaml:3:13 listeners[0].listen: expected host:port'],
    ],
    [
      'port 70000',
      yaml('listeners:', '  - name: web', '    listen: 127.0.0.1:70000', '    cluster: web', ...CLUSTERS),
      ['config.yaml:3:13 listeners[0].listen: port must be 1-65535'],
    ],
    [
      'port 0',
      yaml(...LISTENERS, ...CLUSTERS.slice(0, 3), '      - {address: 127.0.0.1:0}'),
      ['config.yaml:8:19 clusters[0].backends[0].address: port must be 1-65535'],
    ],
    [
      'a duration without a unit',
      yaml(...LISTENERS, ...CLUSTERS, '    connect_timeout: 2'),
      ['config.yaml:9:22 clusters[0].connect_timeout: expected a duration like 500ms, 2s or 5m'],
    ],
    [
      'a duration in words',
      yaml(...LISTENERS, ...CLUSTERS, '    idle_timeout: 5 minutes'),
      ['config.yaml:9:19 clusters[0].idle_timeout: expected a duration like 500ms, 2s or 5m'],
    ],
    [
      'a zero connect timeout',
      yaml(...LISTENERS, ...CLUSTERS, '    connect_timeout: 0s'),
      ['config.yaml:9:22 clusters[0].connect_timeout: must be greater than 0'],
    ],
    [
      'a misspelt key',
      yaml(...LISTENERS, 'clusters:', '  - name: web', '    backend:', '      - {address: 127.0.0.1:9001}'),
      ['config.yaml:7:5 clusters[0]: unknown key "backend" (did you mean "backends"?)'],
    ],
    [
      'a misspelt required key',
      yaml('listeners:', '  - name: web', '    lisen: 127.0.0.1:8080', '    cluster: web', ...CLUSTERS),
      [
        'config.yaml:2:5 listeners[0].listen: missing required key',
        'config.yaml:3:5 listeners[0]: unknown key "lisen" (did you mean "listen"?)',
      ],
    ],
    [
      'an unknown top-level key',
      yaml('sluice: {}', ...LISTENERS, ...CLUSTERS),
      ['config.yaml:1:1 (root): unknown key "sluice"; allowed: workers, admin, state_file, shutdown, access_log, capacity, listeners, clusters, registry'],
    ],
    [
      'a reference to an unknown cluster',
      yaml(
        'listeners:',
        '  - name: web',
        '    listen: 127.0.0.1:8080',
        '    cluster: x',
        'clusters:',
        '  - name: web',
        '  - name: api',
      ),
      ['config.yaml:4:14 listeners[0].cluster: unknown cluster "x"; known: web, api'],
    ],
    [
      'two listeners with one name',
      yaml(...LISTENERS, '  - name: web', '    listen: 127.0.0.1:8081', '    cluster: web', ...CLUSTERS),
      ['config.yaml:5:11 listeners[1].name: duplicate listener name "web" (first at listeners[0])'],
    ],
    [
      'two clusters with one name',
      yaml(...LISTENERS, ...CLUSTERS, '  - name: web'),
      ['config.yaml:9:11 clusters[1].name: duplicate cluster name "web" (first at clusters[0])'],
    ],
    [
      'two listeners on one address',
      yaml(...LISTENERS, '  - name: api', '    listen: 127.0.0.1:8080', '    cluster: web', ...CLUSTERS),
      ['config.yaml:6:13 listeners[1].listen: 127.0.0.1:8080 is already used by listener "web"'],
    ],
    [
      'a wildcard listener over a specific one',
      yaml(...LISTENERS, '  - name: all', '    listen: 0.0.0.0:8080', '    cluster: web', ...CLUSTERS),
      [
        'config.yaml:6:13 listeners[1].listen: 0.0.0.0:8080 overlaps listener "web" on 127.0.0.1:8080 (a wildcard host takes the port on every interface)',
      ],
    ],
    [
      'the admin API on a listener address',
      yaml('admin:', '  listen: 127.0.0.1:8080', ...LISTENERS, ...CLUSTERS),
      ['config.yaml:2:11 admin.listen: 127.0.0.1:8080 is already used by listener "web"'],
    ],
    [
      'one backend listed twice',
      yaml(...LISTENERS, ...CLUSTERS, '      - {address: 127.0.0.1:9001, weight: 5}'),
      ['config.yaml:9:19 clusters[0].backends[1].address: duplicate backend 127.0.0.1:9001 in cluster "web" (first at backends[0])'],
    ],
    [
      'a word for a weight',
      yaml(...LISTENERS, ...CLUSTERS.slice(0, 3), '      - {address: 127.0.0.1:9001, weight: heavy}'),
      ['config.yaml:8:43 clusters[0].backends[0].weight: expected an integer from 0 to 10000'],
    ],
    [
      'a negative weight',
      yaml(...LISTENERS, ...CLUSTERS.slice(0, 3), '      - {address: 127.0.0.1:9001, weight: -1}'),
      ['config.yaml:8:43 clusters[0].backends[0].weight: expected an integer from 0 to 10000'],
    ],
    [
      'a backend without an address',
      yaml(...LISTENERS, ...CLUSTERS.slice(0, 3), '      - {weight: 2}'),
      ['config.yaml:8:9 clusters[0].backends[0].address: missing required key'],
    ],
    [
      'a key with no value',
      yaml(...LISTENERS, ...CLUSTERS.slice(0, 3), '      - address: 127.0.0.1:9001', '        weight:'),
      ['config.yaml:9:9 clusters[0].backends[0].weight: expected an integer from 0 to 10000'],
    ],
    [
      'an unknown protocol',
      yaml('listeners:', '  - name: web', '    protocol: sctp', '    listen: 127.0.0.1:5353', '    cluster: web', ...CLUSTERS),
      ['config.yaml:3:15 listeners[0].protocol: expected tcp or udp'],
    ],
    [
      'udp settings on a tcp listener',
      yaml(...LISTENERS, '    udp: {max_sessions: 10}', ...CLUSTERS),
      ['config.yaml:5:10 listeners[0].udp: udp settings apply only to a listener with protocol: udp'],
    ],
    [
      'an acl on a udp listener (the edge gate runs on TCP only)',
      yaml(...UDP_LISTENER, '    acl: {deny: [10.0.0.0/8]}', ...CLUSTERS),
      ['config.yaml:6:10 listeners[0].acl: acl applies only to TCP listeners (protocol: udp has no edge gate)'],
    ],
    [
      'send_proxy on a cluster a udp listener routes to',
      yaml(...UDP_LISTENER, ...CLUSTERS, '    send_proxy: v2'),
      ['config.yaml:10:17 clusters[0].send_proxy: send_proxy applies only to clusters TCP listeners route to; cluster "web" serves a udp listener'],
    ],
    [
      'a udp session limit of 0',
      yaml(...UDP_LISTENER, '    udp: {max_sessions: 0}', ...CLUSTERS),
      ['config.yaml:6:25 listeners[0].udp.max_sessions: expected an integer from 1 to 1000000'],
    ],
    [
      'a udp receive buffer too small for one datagram',
      yaml(...UDP_LISTENER, '    udp: {recv_buffer: 4096}', ...CLUSTERS),
      ['config.yaml:6:24 listeners[0].udp.recv_buffer: expected an integer from 65536 to 67108864'],
    ],
    [
      'a zero udp session timeout',
      yaml(...UDP_LISTENER, '    udp: {session_timeout: 0s}', ...CLUSTERS),
      ['config.yaml:6:28 listeners[0].udp.session_timeout: must be greater than 0'],
    ],
    [
      'an unknown udp setting',
      yaml(...UDP_LISTENER, '    udp: {max_session: 10}', ...CLUSTERS),
      ['config.yaml:6:11 listeners[0].udp: unknown key "max_session" (did you mean "max_sessions"?)'],
    ],
    [
      'two udp listeners on one address',
      yaml(...UDP_LISTENER, '  - {name: dns2, protocol: udp, listen: 127.0.0.1:5353, cluster: web}', ...CLUSTERS),
      ['config.yaml:6:41 listeners[1].listen: 127.0.0.1:5353 is already used by listener "dns"'],
    ],
    [
      'a udp health check without a payload to send',
      yaml(...LISTENERS, ...CLUSTERS, '    health_check: {type: udp, expect: pong}'),
      ['config.yaml:9:19 clusters[0].health_check.send: missing required key'],
    ],
    [
      'a udp health check with malformed hex',
      yaml(...LISTENERS, ...CLUSTERS, '    health_check: {type: udp, send: "hex:0a0", expect: pong}'),
      ['config.yaml:9:37 clusters[0].health_check.send: expected hex: and pairs of hex digits, like hex:0a1b'],
    ],
    [
      'a udp health check expecting an empty reply',
      yaml(...LISTENERS, ...CLUSTERS, '    health_check: {type: udp, send: ping, expect: ""}'),
      ['config.yaml:9:51 clusters[0].health_check.expect: must not be empty'],
    ],
    [
      'an unknown algorithm',
      yaml(...LISTENERS, ...CLUSTERS, '    algorithm: fastest'),
      ['config.yaml:9:16 clusters[0].algorithm: expected round_robin, least_connections, random, power_of_two or consistent_hash'],
    ],
    [
      'a listener with both cluster and routes',
      yaml(...LISTENERS, '    routes: [{cluster: web, weight: 1}]', ...CLUSTERS),
      ['config.yaml:5:13 listeners[0].routes: give either cluster or routes, not both'],
    ],
    [
      'routes that all weigh 0',
      yaml('listeners:', '  - name: web', '    listen: 127.0.0.1:8080', '    routes: [{cluster: web, weight: 0}]', ...CLUSTERS),
      ['config.yaml:4:13 listeners[0].routes: at least one route needs a weight above 0'],
    ],
    [
      'an empty route list',
      yaml('listeners:', '  - name: web', '    listen: 127.0.0.1:8080', '    routes: []', ...CLUSTERS),
      ['config.yaml:4:13 listeners[0].routes: expected at least one route'],
    ],
    [
      'a route to an unknown cluster',
      yaml('listeners:', '  - name: web', '    listen: 127.0.0.1:8080', '    routes: [{cluster: web, weight: 9}, {cluster: canary, weight: 1}]', ...CLUSTERS),
      ['config.yaml:4:51 listeners[0].routes[1].cluster: unknown cluster "canary"; known: web'],
    ],
    [
      'one cluster routed twice',
      yaml('listeners:', '  - name: web', '    listen: 127.0.0.1:8080', '    routes: [{cluster: web, weight: 9}, {cluster: web, weight: 1}]', ...CLUSTERS),
      ['config.yaml:4:51 listeners[0].routes[1].cluster: cluster "web" is already routed at routes[0]'],
    ],
    [
      'a route weight above 10000',
      yaml('listeners:', '  - name: web', '    listen: 127.0.0.1:8080', '    routes: [{cluster: web, weight: 10001}]', ...CLUSTERS),
      ['config.yaml:4:37 listeners[0].routes[0].weight: expected an integer from 0 to 10000'],
    ],
    [
      'a hash key without consistent_hash',
      yaml(...LISTENERS, ...CLUSTERS, '    hash_key: source_ip'),
      ['config.yaml:9:15 clusters[0].hash_key: hash_key is used only by algorithm: consistent_hash'],
    ],
    [
      'an unknown hash key',
      yaml(...LISTENERS, ...CLUSTERS, '    algorithm: consistent_hash', '    hash_key: cookie'),
      ['config.yaml:10:15 clusters[0].hash_key: expected source_ip or source_ip_port'],
    ],
    [
      'a Maglev table size that is not prime',
      yaml(...LISTENERS, ...CLUSTERS, '    algorithm: consistent_hash', '    maglev_table_size: 65536'),
      ['config.yaml:10:24 clusters[0].maglev_table_size: expected a prime number from 3 to 1000003 (default 65537)'],
    ],
    [
      'a Maglev table size without consistent_hash',
      yaml(...LISTENERS, ...CLUSTERS, '    maglev_table_size: 65537'),
      ['config.yaml:9:24 clusters[0].maglev_table_size: maglev_table_size is used only by algorithm: consistent_hash'],
    ],
    [
      'a queue without a connection limit',
      yaml(...LISTENERS, ...CLUSTERS, '    queue: {size: 5, timeout: 1s}'),
      ['config.yaml:9:12 clusters[0].queue: a queue needs max_connections (on the cluster or its backends): without a limit nothing ever waits'],
    ],
    [
      'a queue of size 0',
      yaml(...LISTENERS, ...CLUSTERS, '    max_connections: 10', '    queue: {size: 0}'),
      ['config.yaml:10:19 clusters[0].queue.size: expected an integer from 1 to 1000000'],
    ],
    [
      'a zero connection limit on a backend',
      yaml(...LISTENERS, ...CLUSTERS.slice(0, 3), '      - {address: 127.0.0.1:9001, max_connections: 0}'),
      ['config.yaml:8:52 clusters[0].backends[0].max_connections: expected an integer from 1 to 10000000'],
    ],
    [
      'a sticky session with a zero ttl',
      yaml(...LISTENERS, ...CLUSTERS, '    sticky: {ttl: 0s}'),
      ['config.yaml:9:19 clusters[0].sticky.ttl: must be greater than 0'],
    ],
    [
      'a misspelt sticky key',
      yaml(...LISTENERS, ...CLUSTERS, '    sticky: {max_entry: 10}'),
      ['config.yaml:9:14 clusters[0].sticky: unknown key "max_entry"; allowed: ttl, max_entries'],
    ],
    [
      'an http health check path without a leading slash',
      yaml(...LISTENERS, ...CLUSTERS, '    health_check: {type: http, path: healthz}'),
      ['config.yaml:9:38 clusters[0].health_check.path: must start with "/"'],
    ],
    [
      'an unknown health check type',
      yaml(...LISTENERS, ...CLUSTERS, '    health_check: {type: icmp}'),
      ['config.yaml:9:26 clusters[0].health_check.type: expected none, tcp, http or udp'],
    ],
    [
      'a health check written as a word',
      yaml(...LISTENERS, ...CLUSTERS, '    health_check: tcp'),
      ['config.yaml:9:19 clusters[0].health_check: expected a mapping like {type: tcp}'],
    ],
    [
      'a health check timeout as long as its interval',
      yaml(...LISTENERS, ...CLUSTERS, '    health_check: {type: tcp, interval: 1s, timeout: 1s}'),
      ['config.yaml:9:54 clusters[0].health_check.timeout: timeout (1s) must be shorter than interval (1s)'],
    ],
    [
      'an access log sampling rate above 1',
      yaml('access_log: {enabled: true, sampling: 1.5}', ...LISTENERS, ...CLUSTERS),
      ['config.yaml:1:39 access_log.sampling: expected a fraction from 0 to 1 (1 = every connection)'],
    ],
    [
      'an access log sampling rate written as a percentage',
      yaml('access_log: {sampling: 10%}', ...LISTENERS, ...CLUSTERS),
      ['config.yaml:1:24 access_log.sampling: expected a fraction from 0 to 1 (1 = every connection)'],
    ],
    [
      'an access log switch that is not a boolean',
      yaml('access_log: {enabled: yes please}', ...LISTENERS, ...CLUSTERS),
      ['config.yaml:1:23 access_log.enabled: expected true or false'],
    ],
    [
      'an unknown panic mode',
      yaml(...LISTENERS, ...CLUSTERS, '    panic_mode: route_some'),
      ['config.yaml:9:17 clusters[0].panic_mode: expected refuse or route_all'],
    ],
    [
      'a slow start that is not a duration',
      yaml(...LISTENERS, ...CLUSTERS, '    slow_start: 30'),
      ['config.yaml:9:17 clusters[0].slow_start: expected a duration like 500ms, 2s or 5m'],
    ],
    [
      'a max ejection time shorter than the base',
      yaml(...LISTENERS, ...CLUSTERS, '    outlier: {base_ejection_time: 1m, max_ejection_time: 30s}'),
      ['config.yaml:9:58 clusters[0].outlier.max_ejection_time: max_ejection_time (30s) must not be shorter than base_ejection_time (1m)'],
    ],
    [
      'a zero base ejection time',
      yaml(...LISTENERS, ...CLUSTERS, '    outlier: {base_ejection_time: 0s}'),
      ['config.yaml:9:35 clusters[0].outlier.base_ejection_time: must be greater than 0'],
    ],
    [
      'too many workers',
      yaml('workers: 65', ...LISTENERS, ...CLUSTERS),
      ['config.yaml:1:10 workers: expected auto or an integer from 1 to 64'],
    ],
  ])('reports %s', (_, text, expected) => {
    expect(errorsOf(text)).toEqual(expected);
  });

  it('reports several errors together, in file order', () => {
    const text = yaml(
      'clusters:',
      '  - name: web',
      '    connect_timeout: soon',
      '    backends:',
      '      - {address: 127.0.0.1:9001, weight: -1}',
      'listeners:',
      '  - name: web',
      '    listen: 127.0.0.1:70000',
      '    cluster: api',
      '    protocl: tcp',
    );
    expect(errorsOf(text)).toEqual([
      'config.yaml:3:22 clusters[0].connect_timeout: expected a duration like 500ms, 2s or 5m',
      'config.yaml:5:43 clusters[0].backends[0].weight: expected an integer from 0 to 10000',
      'config.yaml:8:13 listeners[0].listen: port must be 1-65535',
      'config.yaml:9:14 listeners[0].cluster: unknown cluster "api"; known: web',
      'config.yaml:10:5 listeners[0]: unknown key "protocl" (did you mean "protocol"?)',
    ]);
  });

  it('reports YAML syntax errors first, then the schema errors', () => {
    expect(errorsOf(yaml(...LISTENERS, 'listeners: []', 'workers: none'))).toEqual([
      'config.yaml:5:1 (syntax): map keys must be unique',
      'config.yaml:1:1 clusters: missing required key',
      'config.yaml:5:12 listeners: at least one listener is required',
      'config.yaml:6:10 workers: expected auto or an integer from 1 to 64',
    ]);
  });

  it('throws a ConfigError that carries each issue with its position', () => {
    let thrown: unknown;
    try {
      parseConfig(yaml('workers: 0', ...LISTENERS, ...CLUSTERS.slice(0, 3), '      - {address: nowhere}'), 'etc/sluice.yaml');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect(thrown).toBeInstanceOf(SluiceError);
    const error = thrown as ConfigError;
    expect(error.code).toBe('SLUICE_CONFIG_INVALID');
    expect(error.issues).toEqual([
      { file: 'etc/sluice.yaml', line: 1, column: 10, path: 'workers', message: 'expected auto or an integer from 1 to 64' },
      {
        file: 'etc/sluice.yaml',
        line: 9,
        column: 19,
        path: 'clusters[0].backends[0].address',
        message: 'expected host:port',
      },
    ]);
    expect(error.message).toBe(error.issues.map(formatConfigIssue).join('\n'));
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-config-'));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads and validates a file', () => {
    const file = join(dir, 'good.yaml');
    writeFileSync(file, yaml(...LISTENERS, ...CLUSTERS));
    expect(loadConfig(file).listeners[0]?.listen).toBe('127.0.0.1:8080');
  });

  it('names the file in every error of an invalid file', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, yaml('workers: lots', ...LISTENERS, ...CLUSTERS));
    expect(() => loadConfig(file)).toThrow(`${file}:1:10 workers: expected auto or an integer from 1 to 64`);
  });

  it.each([
    ['a missing file', 'missing.yaml', 'no such file or directory (ENOENT)'],
    ['a directory', '.', 'illegal operation on a directory (EISDIR)'],
  ])('refuses %s as unreadable, with the OS reason', (_, name, reason) => {
    const file = join(dir, name);
    let thrown: unknown;
    try {
      loadConfig(file);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(SluiceError);
    expect(thrown).not.toBeInstanceOf(ConfigError);
    expect((thrown as SluiceError).code).toBe('SLUICE_CONFIG_UNREADABLE');
    expect((thrown as SluiceError).message).toBe(`cannot read config file ${file}: ${reason}`);
  });
});
