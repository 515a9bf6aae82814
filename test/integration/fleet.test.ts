/**
 * Three real Sluice daemons sharing one real etcd (issue #17): a change made on one instance
 * is applied by all three from their watches; racing operators cannot lose an update; etcd
 * going away leaves routing alone and makes writes answer 503; registrations come and go.
 * Each test works on backends of its own so the fleet can be shared.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { clientLoop, eventually, roundTrip } from '../helpers/client.ts';
import { runToExit, startDaemon, writeConfig, type Daemon } from '../helpers/daemon.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { startEtcd, type EtcdServer } from '../helpers/etcd.ts';
import { freePort, freePorts } from '../helpers/ports.ts';

const PREFIX = `/sluice-fleet-${process.pid}/`;

interface Instance {
  readonly name: string;
  readonly daemon: Daemon;
  readonly admin: string;
  readonly listenPort: number;
}

interface BackendRow {
  readonly id: string;
  readonly weight: number;
  readonly state: string;
  readonly admin: string;
}

let etcd: EtcdServer;
let base: TestBackend;
/** The backend a DNS-discovered cluster finds (an A record for 127.0.0.1, its port in config). */
let found: TestBackend;
let dns: TestDnsServer;
let instances: Instance[] = [];
const spares: TestBackend[] = [];

function config(options: {
  admin: number;
  listen: number;
  instance: string;
  endpoints: readonly string[];
  required?: boolean;
  baseWeight?: number;
  prefix?: string;
  stateFile?: string;
}): string {
  return `workers: 1
admin: {listen: 127.0.0.1:${options.admin}}
registry:
  etcd:
    endpoints: [${options.endpoints.join(', ')}]
    prefix: ${options.prefix ?? PREFIX}
    instance: ${options.instance}
    required: ${options.required === true ? 'true' : 'false'}
${options.stateFile === undefined ? '' : `state_file: ${options.stateFile}\n`}listeners:
  - {name: web, protocol: tcp, listen: 127.0.0.1:${options.listen}, cluster: web}
clusters:
  - name: web
    algorithm: round_robin
    health_check: {type: none}
    backends: [{address: ${base.address}, weight: ${options.baseWeight ?? 1}}]
  - name: spare
    algorithm: round_robin
    health_check: {type: none}
    backends: []
  - name: found
    algorithm: round_robin
    health_check: {type: none}
    discovery: {type: dns, name: found.fleet.test, record: a, port: ${found.port}, resolvers: ['${dns.address}']}
`;
}

async function request(instance: Instance, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${instance.admin}${path}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

async function backends(instance: Instance): Promise<BackendRow[]> {
  return (await request(instance, 'GET', '/backends')).json as unknown as BackendRow[];
}

/** Waits until `check` holds for the backend `id` on every instance; returns each one's row. */
async function onEvery(id: string, check: (row: BackendRow | undefined) => boolean): Promise<(BackendRow | undefined)[]> {
  return Promise.all(
    instances.map(async (instance) => {
      const rows = await eventually(
        async () => backends(instance),
        (list) => check(list.find((b) => b.id === id)),
        20_000,
      );
      const row = rows.find((b) => b.id === id);
      expect(check(row), `${instance.name}: ${id} is ${JSON.stringify(row)}`).toBe(true);
      return row;
    }),
  );
}

async function spare(): Promise<TestBackend> {
  const backend = await startBackend('name');
  spares.push(backend);
  return backend;
}

beforeAll(async () => {
  etcd = await startEtcd();
  base = await startBackend('echo');
  found = await startBackend('name');
  dns = await startDnsServer((question) => (question.type === 'A' ? { answers: [{ type: 'A', name: question.name, ttl: 1, data: '127.0.0.1' }] } : {}));
  const ports = await freePorts(6);
  instances = await Promise.all(
    [0, 1, 2].map(async (i) => {
      const admin = ports[2 * i] as number;
      const listenPort = ports[2 * i + 1] as number;
      const name = `lb-${i + 1}`;
      const daemon = await startDaemon(config({ admin, listen: listenPort, instance: name, endpoints: [etcd.endpoint] }), admin);
      return { name, daemon, admin: daemon.adminUrl, listenPort };
    }),
  );
}, 120_000);

afterAll(async () => {
  await Promise.all(instances.map(async (i) => i.daemon.stop()));
  for (const b of [base, found, ...spares]) await b.close();
  await dns.close();
  await etcd.stop();
});

describe('a fleet of three instances sharing one registry', () => {
  it('lists all three in GET /fleet with the same snapshot hash', async () => {
    const fleets = await Promise.all(
      instances.map(async (instance) =>
        eventually(
          async () => (await request(instance, 'GET', '/fleet')).json,
          (f) => Array.isArray(f['instances']) && (f['instances'] as unknown[]).length === 3,
          20_000,
        ),
      ),
    );
    for (const fleet of fleets) {
      const listed = fleet['instances'] as { instance: string; snapshot_hash: string }[];
      expect(listed.map((i) => i.instance)).toEqual(['lb-1', 'lb-2', 'lb-3']);
      expect(new Set(listed.map((i) => i.snapshot_hash)).size).toBe(1);
    }
    const metrics = await (await fetch(`${(instances[0] as Instance).admin}/metrics`)).text();
    expect(metrics).toMatch(/^sluice_registry_up\{registry="etcd http:\/\/127\.0\.0\.1:\d+"\} 1$/m);
    expect(metrics).toMatch(/^sluice_registry_revision [1-9]\d*$/m);
    expect(metrics).toMatch(/^sluice_fleet_instances 3$/m);
    expect(metrics).toMatch(/^sluice_fleet_snapshot_mismatch 0$/m);
  });

  it('an add, a drain, a weight, routes and an acl made on one instance are applied by all three', async () => {
    const [a, b, c] = instances as [Instance, Instance, Instance];
    const added = await spare();
    const id = `web:${added.address}`;
    const add = await request(a, 'POST', '/backends', { cluster: 'web', address: added.address, weight: 2 });
    expect(add.status).toBe(201);
    expect(add.json).toMatchObject({ id, weight: 2, state: 'healthy' });
    expect(add.json['snapshot_version']).toEqual(expect.any(Number));
    expect(add.json['revision']).toEqual(expect.any(Number));
    await onEvery(id, (row) => row?.state === 'healthy' && row.weight === 2);
    // Routed by each instance: its listener reaches the new backend (round robin over two).
    for (const instance of instances) {
      await eventually(
        async () => (await roundTrip(instance.listenPort, Buffer.from('x'))).toString(),
        (reply) => reply === added.address,
        20_000,
        0,
      );
    }

    const drain = await request(b, 'POST', `/backends/${id}/drain`, {});
    expect(drain.status).toBe(200);
    expect(drain.json['admin']).toBe('drain');
    expect(drain.json['revision']).toEqual(expect.any(Number));
    await onEvery(id, (row) => row?.admin === 'drain');

    const weight = await request(c, 'PATCH', `/backends/${id}`, { weight: 7 });
    expect(weight.status).toBe(200);
    await onEvery(id, (row) => row?.weight === 7 && row.admin === 'drain');

    const routes = await request(a, 'PATCH', '/listeners/web/routes', { routes: [{ cluster: 'web', weight: 3 }, { cluster: 'spare', weight: 1 }] });
    expect(routes.status).toBe(200);
    expect(routes.json['revision']).toEqual(expect.any(Number));
    const acl = await request(b, 'PUT', '/listeners/web/acl', { allow: ['127.0.0.0/8'], deny: ['127.0.0.99/32'] });
    expect(acl.status).toBe(200);
    for (const instance of instances) {
      const listener = await eventually(
        async () => (await request(instance, 'GET', '/listeners/web')).json,
        (l) => JSON.stringify(l['routes']).includes('spare'),
        20_000,
      );
      expect(listener['routes']).toMatchObject([
        { cluster: 'web', weight: 3 },
        { cluster: 'spare', weight: 1 },
      ]);
      const got = await eventually(
        async () => (await request(instance, 'GET', '/listeners/web/acl')).json,
        (l) => JSON.stringify(l['deny']) === '["127.0.0.99/32"]',
        20_000,
      );
      expect(got).toMatchObject({ allow: ['127.0.0.0/8'], deny: ['127.0.0.99/32'] });
    }
    // Back to the file's routes (the registry key is deleted) so later tests route to web alone.
    expect((await request(c, 'PATCH', '/listeners/web/routes', { routes: [{ cluster: 'web', weight: 1 }] })).status).toBe(200);

    const remove = await request(c, 'DELETE', `/backends/${id}`);
    expect([200, 202]).toContain(remove.status);
    await onEvery(id, (row) => row === undefined);
  }, 90_000);

  it('two operators racing on one backend: one wins, the other gets 409 with the current value, and no update is lost', async () => {
    const [a, b] = instances as [Instance, Instance];
    const raced = await spare();
    const id = `web:${raced.address}`;
    expect((await request(a, 'POST', '/backends', { cluster: 'web', address: raced.address })).status).toBe(201);
    await onEvery(id, (row) => row !== undefined);
    // Both decide from the same applied state (a drain and a reweight of the same override
    // key) unless one instance happened to apply the other's write first; then both are
    // sequential and succeed. Each round ends with both changes in place, and at least one
    // round must have been a real race.
    let conflicts = 0;
    for (let round = 0; round < 5 && conflicts === 0; round++) {
      const weightTo = 5 + round;
      const [drain, weight] = await Promise.all([request(a, 'POST', `/backends/${id}/drain`, {}), request(b, 'PATCH', `/backends/${id}`, { weight: weightTo })]);
      // One guard passes: two 409s would mean a write lost to nothing.
      expect(drain.status === 409 && weight.status === 409).toBe(false);
      for (const loser of [drain, weight].filter((r) => r.status === 409)) {
        conflicts++;
        expect(loser.json['error']).toBe('CONFLICT');
        expect(String(loser.json['message'])).toMatch(/current value: \{.*\}/);
      }
      for (const r of [drain, weight]) expect([200, 409]).toContain(r.status);
      // The loser looks and retries: both changes stand on every instance.
      if (drain.status === 409) expect((await request(a, 'POST', `/backends/${id}/drain`, {})).status).toBe(200);
      if (weight.status === 409) expect((await request(b, 'PATCH', `/backends/${id}`, { weight: weightTo })).status).toBe(200);
      await onEvery(id, (row) => row?.admin === 'drain' && row.weight === weightTo);
      expect((await request(a, 'POST', `/backends/${id}/undrain`, {})).status).toBe(200);
      await onEvery(id, (row) => row?.admin === 'none');
    }
    expect(conflicts).toBe(1);
    expect((await request(a, 'DELETE', `/backends/${id}`)).status).toBeLessThan(300);
    await onEvery(id, (row) => row === undefined);
  }, 60_000);

  it('a reload keeps the registry in charge: a weight the file changes stays the registry\'s on that instance', async () => {
    const [a, , c] = instances as [Instance, Instance, Instance];
    const id = `web:${base.address}`;
    expect((await request(a, 'PATCH', `/backends/${id}`, { weight: 7 })).status).toBe(200);
    await onEvery(id, (row) => row?.weight === 7);
    const reload = async (baseWeight: number): Promise<void> => {
      const admin = Number(new URL(c.admin).port);
      writeFileSync(c.daemon.configFile, config({ admin, listen: c.listenPort, instance: c.name, endpoints: [etcd.endpoint], baseWeight }));
      const before = c.daemon.logs.filter((l) => l.msg === 'config reloaded').length;
      c.daemon.child.kill('SIGHUP');
      await c.daemon.waitForLog(() => c.daemon.logs.filter((l) => l.msg === 'config reloaded').length > before, 20_000);
    };
    await reload(4);
    expect((await backends(c)).find((b) => b.id === id)?.weight).toBe(7);
    // The file back as the others have it, and the override lifted: weight 1 everywhere.
    await reload(1);
    expect((await request(a, 'PATCH', `/backends/${id}`, { weight: 1 })).status).toBe(200);
    await onEvery(id, (row) => row?.weight === 1);
  }, 60_000);

  it('a weight set on a discovered backend is applied by every instance (the set stays the source\'s)', async () => {
    const [a] = instances as [Instance];
    const id = `found:${found.address}`;
    await onEvery(id, (row) => row?.state === 'healthy' && row.weight === 1);
    const reweighted = await request(a, 'PATCH', `/backends/${id}`, { weight: 9 });
    expect(reweighted.status).toBe(200);
    expect(reweighted.json['weight']).toBe(9);
    await onEvery(id, (row) => row?.weight === 9);
    expect((await request(a, 'PATCH', `/backends/${id}`, { weight: 1 })).status).toBe(200);
  }, 60_000);

  it('a value another tool wrote that does not parse is logged with its key and ignored', async () => {
    const key = `${PREFIX}clusters/web/overrides/127.0.0.1:1`;
    await etcd.client().put(key).value('not json');
    for (const instance of instances) {
      const line = await instance.daemon.waitForLog((l) => l.msg === 'registry value ignored' && l['key'] === key, 20_000);
      expect(String(line['problem'])).toMatch(/not JSON/);
    }
    await etcd.client().delete().key(key);
    // Routing is untouched.
    for (const instance of instances) expect((await roundTrip(instance.listenPort, Buffer.from('ok'))).toString()).toBe('ok');
  });

  it('a leased registration that expires drains the backend on every instance', async () => {
    const registered = await spare();
    const id = `web:${registered.address}`;
    const lease = etcd.client().lease(1, { autoKeepAlive: false });
    await lease.put(`${PREFIX}clusters/web/backends/${registered.address}`).value('{"weight":1}');
    await onEvery(id, (row) => row?.state === 'healthy');
    // Not renewed: etcd expires it after its TTL and every watch sees the delete.
    await onEvery(id, (row) => row === undefined || row.admin === 'remove');
    lease.release();
  }, 60_000);

  it('a backend registering again keeps the drain an operator set', async () => {
    const [a] = instances as [Instance];
    const again = await spare();
    const id = `web:${again.address}`;
    const key = `${PREFIX}clusters/web/backends/${again.address}`;
    const client = etcd.client();
    await client.put(key).value('{"weight":1}');
    await onEvery(id, (row) => row?.state === 'healthy');
    expect((await request(a, 'POST', `/backends/${id}/drain`, {})).status).toBe(200);
    await onEvery(id, (row) => row?.admin === 'drain');
    await client.delete().key(key);
    await onEvery(id, (row) => row === undefined || row.admin === 'remove');
    await client.put(key).value('{"weight":1}');
    await onEvery(id, (row) => row !== undefined && row.admin === 'drain');
    // Clean up the operator's override too.
    await client.delete().prefix(`${PREFIX}clusters/web/overrides/${again.address}`);
    await client.delete().key(key);
  }, 60_000);

  it('with etcd killed, routing goes on with 0 failed connections, writes answer 503 naming the registry, and the fleet converges once it is back', async () => {
    const [a, b, c] = instances as [Instance, Instance, Instance];
    const loops = instances.map((i) => clientLoop(i.listenPort, 2));
    await etcd.kill();
    const write = await eventually(
      async () => request(b, 'POST', `/backends/web:${base.address}/drain`, {}),
      (r) => r.status === 503,
      20_000,
    );
    expect(write.status).toBe(503);
    expect(write.json['error']).toBe('UNAVAILABLE');
    expect(String(write.json['message'])).toContain(etcd.endpoint);
    const health = await eventually(
      async () => (await request(a, 'GET', '/healthz')).json,
      (h) => (h['registry'] as { up?: boolean } | undefined)?.up === false,
      20_000,
    );
    expect(health['status']).toBe('ok');
    expect((await fetch(`${c.admin}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${a.admin}/metrics`)).text();
    expect(metrics).toMatch(/^sluice_registry_up\{registry="etcd [^"]+"\} 0$/m);

    await etcd.restart();
    // A change after the outage reaches everyone; every instance then reports one hash.
    const after = await eventually(
      async () => request(c, 'PATCH', `/backends/web:${base.address}`, { weight: 3 }),
      (r) => r.status === 200,
      30_000,
    );
    expect(after.status).toBe(200);
    await onEvery(`web:${base.address}`, (row) => row?.weight === 3);
    for (const instance of instances) {
      const fleet = await eventually(
        async () => (await request(instance, 'GET', '/fleet')).json,
        (f) => {
          const listed = (f['instances'] ?? []) as { snapshot_hash: string; revision: number }[];
          return f['up'] === true && listed.length === 3 && new Set(listed.map((i) => i.snapshot_hash)).size === 1 && new Set(listed.map((i) => i.revision)).size === 1;
        },
        30_000,
      );
      expect((fleet['instances'] as unknown[]).length).toBe(3);
    }
    const results = await Promise.all(loops.map(async (l) => l.stop()));
    for (const r of results) {
      expect(r.failed).toEqual([]);
      expect(r.ok).toBeGreaterThan(0);
    }
    expect((await request(a, 'PATCH', `/backends/web:${base.address}`, { weight: 1 })).status).toBe(200);
  }, 90_000);
});

describe('start-up with the registry unreachable', () => {
  it('starts anyway with a clear log line; with required: true it refuses to start, naming the endpoints', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const [admin, listen] = await freePorts(2);
    const daemon = await startDaemon(config({ admin: admin as number, listen: listen as number, instance: 'lonely', endpoints: [closed] }), admin as number);
    try {
      const line = daemon.logs.find((l) => typeof l.msg === 'string' && l.msg.includes('unreachable at start'));
      expect(line?.msg).toContain(closed);
      expect((await fetch(`${daemon.adminUrl}/readyz`)).status).toBe(200);
      const refused = await fetch(`${daemon.adminUrl}/backends/web:${base.address}/drain`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(refused.status).toBe(503);
      expect(((await refused.json()) as { message: string }).message).toContain(closed);
    } finally {
      await daemon.stop();
    }
    const file = writeConfig(config({ admin: admin as number, listen: listen as number, instance: 'strict', endpoints: [closed], required: true }));
    const run = await runToExit(['run', '--config', file]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(closed);
    expect(run.stderr).toMatch(/^sluice: registry etcd http:\/\/127\.0\.0\.1:\d+ is required \(registry\.etcd\.required: true\)/m);
    // A refusal to act on, not a crash: no stack trace.
    expect(run.stderr).not.toMatch(/^\s+at /m);
  }, 60_000);

  it('starts from the state file, the last-known copy of the registry\'s intent, when etcd is unreachable', async () => {
    const prefix = `${PREFIX}copy/`;
    const stateFile = path.join(mkdtempSync(path.join(tmpdir(), 'sluice-fleet-')), 'state.json');
    const [admin, listen] = (await freePorts(2)) as [number, number];
    const id = `web:${base.address}`;
    const first = await startDaemon(config({ admin, listen, instance: 'copy', endpoints: [etcd.endpoint], prefix, stateFile }), admin);
    try {
      const drained = await fetch(`${first.adminUrl}/backends/${id}/drain`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(drained.status).toBe(200);
    } finally {
      await first.stop();
    }
    const closed = `http://127.0.0.1:${await freePort()}`;
    const second = await startDaemon(config({ admin, listen, instance: 'copy', endpoints: [closed], prefix, stateFile }), admin);
    try {
      expect(second.logs.some((l) => typeof l.msg === 'string' && l.msg.includes('unreachable at start') && l.msg.includes('state file'))).toBe(true);
      const rows = (await (await fetch(`${second.adminUrl}/backends`)).json()) as BackendRow[];
      expect(rows.find((b) => b.id === id)?.admin).toBe('drain');
    } finally {
      await second.stop();
      await etcd.client().delete().prefix(prefix);
    }
  }, 60_000);
});
