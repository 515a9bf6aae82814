import { describe, expect, it } from 'vitest';
import { decodeSnapshot, encodeSnapshot } from '../../../src/shared/snapshot/codec.ts';
import { SluiceError } from '../../../src/shared/errors.ts';
import type { Snapshot } from '../../../src/shared/snapshot/types.ts';

const backend = {
  id: 'web:10.0.0.1:8080',
  slot: 0,
  address: '10.0.0.1:8080',
  host: '10.0.0.1',
  port: 8080,
  weight: 100,
  configuredWeight: 100,
  state: 'healthy',
  maxConnections: 0,
  admin: 'none',
  drained: false,
  reason: 'configured',
  since: 1_700_000_000_000,
} as const;

/** Cluster fields with their "feature off" values. */
const policy = {
  hashKey: 'source_ip',
  maglevTableSize: 65_537,
  stickyTtlMs: 0,
  stickyMaxEntries: 0,
  queueSize: 0,
  queueTimeoutMs: 0,
} as const;

const full: Snapshot = {
  version: 7,
  clusters: [
    {
      name: 'web',
      algorithm: 'consistent_hash',
      hashKey: 'source_ip_port',
      maglevTableSize: 7,
      stickyTtlMs: 600_000,
      stickyMaxEntries: 100_000,
      queueSize: 5,
      queueTimeoutMs: 1000,
      connectTimeoutMs: 1000,
      idleTimeoutMs: 0,
      panicMode: 'route_all',
      backends: [
        backend,
        { ...backend, id: 'web:[::1]:9000', slot: 3, address: '[::1]:9000', host: '::1', port: 9000, weight: 2.5, state: 'draining', admin: 'drain', maxConnections: 10 },
        { ...backend, id: 'web:b:1', slot: 4, address: 'b:1', host: 'b', port: 1, weight: 0, state: 'unhealthy', admin: 'remove', drained: true, reason: '3 failed probes: ECONNREFUSED' },
      ],
    },
    { name: 'empty', algorithm: 'round_robin', ...policy, connectTimeoutMs: 5, idleTimeoutMs: 60_000, panicMode: 'refuse', backends: [] },
  ],
  listeners: [
    { name: 'http', cluster: 'web', routes: [{ cluster: 'web', weight: 90 }, { cluster: 'empty', weight: 10 }] },
    { name: 'ünï-ç😀de', cluster: 'empty', routes: [{ cluster: 'empty', weight: 1 }] },
  ],
};

const utf8 = new TextEncoder();
const bytesOf = (value: unknown): Uint8Array => utf8.encode(JSON.stringify(value));
/** Marks an edit that removes the field instead of setting it. */
const DELETE = Symbol('delete');

/** `full` as plain JSON with the value at `path` replaced (or deleted); `[]` replaces the whole. */
function edited(path: readonly (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const root: unknown = JSON.parse(JSON.stringify(full));
  let node = root as Record<PropertyKey, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<PropertyKey, unknown>;
  const last = path[path.length - 1] as string | number;
  if (value === DELETE) Reflect.deleteProperty(node, last);
  else node[last] = value;
  return root;
}

function expectCorrupt(run: () => unknown, messagePart: string): void {
  let thrown: unknown;
  try {
    run();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(SluiceError);
  expect((thrown as SluiceError).code).toBe('SLUICE_SNAPSHOT_CORRUPT');
  expect((thrown as SluiceError).message).toContain(messagePart);
}

describe('snapshot codec', () => {
  it.each<[string, Snapshot]>([
    ['an empty snapshot', { version: 0, clusters: [], listeners: [] }],
    ['a cluster without backends', { version: 1, clusters: [full.clusters[1]!], listeners: [] }],
    ['every backend state, IPv6, fractional weight and non-ASCII names', full],
    ['the largest version', { ...full, version: 0x7fffffff }],
  ])('round-trips %s', (_name, snapshot) => {
    expect(decodeSnapshot(encodeSnapshot(snapshot))).toEqual(snapshot);
  });

  it('decodes to objects frozen all the way down', () => {
    const s = decodeSnapshot(encodeSnapshot(full));
    const everything: object[] = [s, s.clusters, s.listeners, ...s.clusters, ...s.listeners];
    for (const c of s.clusters) everything.push(c.backends, ...c.backends);
    for (const l of s.listeners) everything.push(l.routes, ...l.routes);
    expect(everything.every((o) => Object.isFrozen(o))).toBe(true);
  });

  it('encodes only the fields of the Snapshot type, so callers may pass richer objects', () => {
    const rich = { ...full, extra: 1, clusters: [{ ...full.clusters[0]!, healthCounters: [1, 2] }], listeners: [] };
    expect(decodeSnapshot(encodeSnapshot(rich))).toEqual({ ...full, clusters: [full.clusters[0]], listeners: [] });
  });

  it('refuses to encode content that readers would reject', () => {
    const bad = { ...full, clusters: [{ ...full.clusters[0]!, backends: [{ ...backend, weight: Number.NaN }] }] };
    expectCorrupt(() => encodeSnapshot(bad), 'cannot encode snapshot: $.clusters[0].backends[0].weight');
  });

  const malformedBytes: [string, Uint8Array, string][] = [
    ['no bytes', new Uint8Array(0), 'not UTF-8 JSON'],
    ['invalid UTF-8', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), 'not UTF-8 JSON'],
    ['truncated JSON', encodeSnapshot(full).subarray(0, 40), 'not UTF-8 JSON'],
    ['JSON with trailing garbage', utf8.encode(`${JSON.stringify(full)}}`), 'not UTF-8 JSON'],
  ];
  it.each(malformedBytes)('rejects %s', (_name, bytes, messagePart) => {
    expectCorrupt(() => decodeSnapshot(bytes), messagePart);
  });

  // Each row breaks one thing in an otherwise valid snapshot: [name, path, new value, message].
  const b0 = ['clusters', 0, 'backends', 0] as const;
  const malformedShapes: [string, (string | number)[], unknown, string][] = [
    ['a top level that is null', [], null, '$ must be an object, got null'],
    ['a top level that is an array', [], [full], '$ must be an object, got an array'],
    ['a top level that is a number', [], 7, '$ must be an object, got 7'],
    ['a missing version', ['version'], DELETE, '$.version must be an integer in 0..2147483647, got undefined'],
    ['a negative version', ['version'], -1, '$.version must be an integer in 0..2147483647, got -1'],
    ['a fractional version', ['version'], 1.5, '$.version must be an integer'],
    ['a version beyond Int32', ['version'], 2 ** 31, '$.version must be an integer'],
    ['a string version', ['version'], '7', '$.version must be an integer in 0..2147483647, got "7"'],
    ['clusters that are not an array', ['clusters'], {}, '$.clusters must be an array, got object'],
    ['missing listeners', ['listeners'], DELETE, '$.listeners must be an array, got undefined'],
    ['an unknown top-level field', ['extra'], true, '$ has unknown field "extra"'],
    ['a cluster that is a string', ['clusters', 1], 'web', '$.clusters[1] must be an object, got "web"'],
    ['a cluster without a name', ['clusters', 0, 'name'], DELETE, '$.clusters[0].name must be a string'],
    ['an unknown algorithm', ['clusters', 0, 'algorithm'], 'fastest', '$.clusters[0].algorithm must be one of round_robin, least_connections, random, power_of_two, consistent_hash, got "fastest"'],
    ['an unknown hash key', ['clusters', 0, 'hashKey'], 'cookie', '$.clusters[0].hashKey must be one of source_ip, source_ip_port'],
    ['a Maglev table of one entry', ['clusters', 0, 'maglevTableSize'], 1, '$.clusters[0].maglevTableSize must be an integer in 2..'],
    ['a fractional sticky entry count', ['clusters', 0, 'stickyMaxEntries'], 0.5, '$.clusters[0].stickyMaxEntries must be an integer'],
    ['a negative queue size', ['clusters', 0, 'queueSize'], -1, '$.clusters[0].queueSize must be an integer'],
    ['a missing queue timeout', ['clusters', 0, 'queueTimeoutMs'], DELETE, '$.clusters[0].queueTimeoutMs must be a finite number >= 0'],
    ['a negative sticky ttl', ['clusters', 0, 'stickyTtlMs'], -5, '$.clusters[0].stickyTtlMs must be a finite number >= 0'],
    ['a negative connect timeout', ['clusters', 0, 'connectTimeoutMs'], -1, '$.clusters[0].connectTimeoutMs must be a finite number >= 0'],
    ['a null idle timeout (NaN after JSON)', ['clusters', 0, 'idleTimeoutMs'], null, '$.clusters[0].idleTimeoutMs must be a finite number >= 0, got null'],
    ['an unknown panic mode', ['clusters', 0, 'panicMode'], 'route_some', '$.clusters[0].panicMode must be one of refuse, route_all'],
    ['backends that are not an array', ['clusters', 0, 'backends'], 'none', '$.clusters[0].backends must be an array'],
    ['an unknown cluster field', ['clusters', 1, 'weight'], 1, '$.clusters[1] has unknown field "weight"'],
    ['a backend that is null', ['clusters', 0, 'backends', 2], null, '$.clusters[0].backends[2] must be an object, got null'],
    ['a backend id that is a number', [...b0, 'id'], 1, '$.clusters[0].backends[0].id must be a string'],
    ['a negative slot', [...b0, 'slot'], -1, '$.clusters[0].backends[0].slot must be an integer'],
    ['port 0', [...b0, 'port'], 0, '$.clusters[0].backends[0].port must be an integer in 1..65535, got 0'],
    ['port 65536', [...b0, 'port'], 65536, '$.clusters[0].backends[0].port must be an integer in 1..65535'],
    ['a negative weight', [...b0, 'weight'], -1, '$.clusters[0].backends[0].weight must be a finite number >= 0'],
    ['an unknown state', [...b0, 'state'], 'up', '$.clusters[0].backends[0].state must be one of healthy, draining, unhealthy'],
    ['an unknown admin intent', [...b0, 'admin'], 'maintenance', '$.clusters[0].backends[0].admin must be one of none, drain, remove'],
    ['a drained flag that is a string', [...b0, 'drained'], 'yes', '$.clusters[0].backends[0].drained must be a boolean, got "yes"'],
    ['a missing reason', [...b0, 'reason'], DELETE, '$.clusters[0].backends[0].reason must be a string, got undefined'],
    ['a negative configured weight', [...b0, 'configuredWeight'], -2, '$.clusters[0].backends[0].configuredWeight must be a finite number >= 0'],
    ['a since that is a string', [...b0, 'since'], 'now', '$.clusters[0].backends[0].since must be a finite number >= 0'],
    ['a missing host', [...b0, 'host'], DELETE, '$.clusters[0].backends[0].host must be a string, got undefined'],
    ['an unknown backend field', [...b0, 'generation'], 2, '$.clusters[0].backends[0] has unknown field "generation"'],
    ['a fractional connection limit', [...b0, 'maxConnections'], 1.5, '$.clusters[0].backends[0].maxConnections must be an integer'],
    ['listener routes that are not a list', ['listeners', 0, 'routes'], 'web', '$.listeners[0].routes must be an array'],
    ['a route without a weight', ['listeners', 0, 'routes', 1, 'weight'], DELETE, '$.listeners[0].routes[1].weight must be a finite number >= 0'],
    ['a route with an unknown field', ['listeners', 0, 'routes', 0, 'sni'], 'x', '$.listeners[0].routes[0] has unknown field "sni"'],
    ['a listener without a cluster', ['listeners', 0, 'cluster'], DELETE, '$.listeners[0].cluster must be a string'],
    ['a listener that is an array', ['listeners', 1], [], '$.listeners[1] must be an object, got an array'],
    ['an own __proto__ field', [], JSON.parse(`{"__proto__":{},${JSON.stringify(full).slice(1)}`), '$ has unknown field "__proto__"'],
  ];
  it.each(malformedShapes)('rejects %s', (_name, path, value, messagePart) => {
    expectCorrupt(() => decodeSnapshot(bytesOf(edited(path, value))), messagePart);
  });
});
