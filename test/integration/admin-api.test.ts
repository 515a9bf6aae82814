/**
 * The admin API against the real daemon: hot-add, drain, remove and reweight while traffic
 * flows; refusals that change nothing; auth; the state file across restarts; concurrent
 * writes; and `sluice ctl`.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { eventually, openEcho, readAll, roundTrip } from '../helpers/client.ts';
import { runCli, runToExit, startDaemon, writeConfig, type Daemon } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

interface BackendJson {
  id: string;
  address: string;
  weight: number;
  state: string;
  admin: string;
  active_connections: number;
  snapshot_version?: number;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function backends(n: number, behaviour: 'echo' | 'name'): Promise<TestBackend[]> {
  const started = await Promise.all(Array.from({ length: n }, async () => startBackend(behaviour)));
  for (const b of started) cleanups.push(async () => b.close());
  return started;
}

interface Setup {
  readonly daemon: Daemon;
  readonly port: number;
  readonly adminPort: number;
  readonly configFile: string;
  api(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; json: unknown }>;
  list(): Promise<BackendJson[]>;
}

function yamlFor(o: { port: number; adminPort: number; addresses: string[]; workers?: number; extra?: string[]; cluster?: string[] }): string {
  return [
    `workers: ${o.workers ?? 2}`,
    `admin: {listen: "127.0.0.1:${o.adminPort}"${o.extra?.includes('token') === true ? ', token_env: TEST_ADMIN_TOKEN' : ''}}`,
    ...(o.extra ?? []).filter((l) => l !== 'token'),
    'shutdown: {drain_timeout: 2s}',
    'listeners:',
    `  - {name: web, listen: "127.0.0.1:${o.port}", cluster: web}`,
    'clusters:',
    '  - name: web',
    ...(o.cluster ?? []).map((l) => `    ${l}`),
    `    backends: [${o.addresses.map((a) => `{address: "${a}"}`).join(', ')}]`,
    '',
  ].join('\n');
}

async function daemonWith(
  addresses: string[],
  options: { workers?: number; extra?: string[]; cluster?: string[]; env?: Record<string, string>; configFile?: string; ports?: [number, number] } = {},
): Promise<Setup> {
  const [port, adminPort] = options.ports ?? ((await freePorts(2)) as [number, number]);
  const yaml = yamlFor({ port, adminPort, addresses, ...options });
  const configFile = options.configFile ?? writeConfig(yaml);
  const daemon = await startDaemon(yaml, adminPort, { configFile, ...(options.env === undefined ? {} : { env: options.env }) });
  cleanups.push(async () => daemon.stop('SIGKILL'));
  const api: Setup['api'] = async (method, url, body, headers = {}) => {
    const response = await fetch(`${daemon.adminUrl}${url}`, {
      method,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
  };
  return {
    daemon,
    port,
    adminPort,
    configFile,
    api,
    list: async () => (await api('GET', '/backends', undefined, options.env?.['TEST_ADMIN_TOKEN'] === undefined ? {} : { authorization: `Bearer ${options.env['TEST_ADMIN_TOKEN']}` })).json as BackendJson[],
  };
}

describe('backend writes while traffic flows', () => {
  it('routes new connections to a backend added under load from the snapshot the POST answered with', async () => {
    const named = await backends(2, 'name');
    let firstAcceptAt = 0;
    let acceptedByNew = 0;
    const fresh = net.createServer((socket) => {
      acceptedByNew++;
      if (firstAcceptAt === 0) firstAcceptAt = performance.now();
      socket.on('error', () => socket.destroy());
      socket.end(address);
    });
    await new Promise<void>((resolve) => fresh.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => new Promise((resolve) => fresh.close(resolve)));
    const address = `127.0.0.1:${(fresh.address() as net.AddressInfo).port}`;
    const setup = await daemonWith(named.map((b) => b.address));

    let running = true;
    let failed = 0;
    let finished = 0;
    const lanes = Array.from({ length: 6 }, async () => {
      while (running) {
        await readAll(setup.port).catch(() => failed++);
        finished++;
      }
    });
    // The POST lands while connections are in flight.
    await eventually(async () => Promise.resolve(finished), (n) => n >= 30, 20_000, 10);
    const postedAt = performance.now();
    const added = await setup.api('POST', '/backends', { cluster: 'web', address });
    const answeredAt = performance.now();
    expect(added.status).toBe(201);
    const version = (added.json as BackendJson).snapshot_version!;
    const snapshot = (await setup.api('GET', '/snapshot')).json as { version: number; clusters: { backends: { id: string }[] }[] };
    expect(snapshot.version).toBeGreaterThanOrEqual(version);
    expect(snapshot.clusters[0]?.backends.map((b) => b.id)).toContain(`web:${address}`);
    // Each worker round-robins over the 3 backends: any 20 connections made after the
    // answer include some for the new backend, whichever worker the kernel gives them to.
    running = false;
    await Promise.all(lanes);
    const before = acceptedByNew;
    const after = [];
    for (let i = 0; i < 20; i++) after.push(await readAll(setup.port));
    expect(after.filter((r) => r === address).length).toBeGreaterThanOrEqual(3);
    expect(acceptedByNew - before).toBe(after.filter((r) => r === address).length);
    expect(failed).toBe(0);
    console.log(
      `add under load: POST answered in ${(answeredAt - postedAt).toFixed(1)} ms (snapshot ${version}); ` +
        `first connection at the new backend ${(firstAcceptAt - postedAt).toFixed(1)} ms after the POST was sent`,
    );
  });

  it('drains a backend: its open connection keeps flowing, new ones go elsewhere, DELETE removes it when the connection closes', async () => {
    const echoes = await backends(2, 'echo');
    const setup = await daemonWith(
      echoes.map((b) => b.address),
      { workers: 1 },
    );
    const held = await openEcho(setup.port);
    cleanups.push(() => Promise.resolve(held.socket.destroy()));
    expect(await held.exchange('one')).toBe('one');
    const owner = echoes.find((b) => b.open.size === 1)!;
    const other = echoes.find((b) => b !== owner)!;
    const id = `web:${owner.address}`;

    const drained = await setup.api('POST', `/backends/${id}/drain`);
    expect(drained.status).toBe(200);
    expect(drained.json).toMatchObject({ id, state: 'draining', admin: 'drain', active_connections: 1 });
    expect(await held.exchange('two')).toBe('two');
    const acceptedBefore = [owner.accepted, other.accepted];
    await Promise.all(Array.from({ length: 10 }, async () => roundTrip(setup.port, Buffer.from('x'))));
    expect([owner.accepted - acceptedBefore[0]!, other.accepted - acceptedBefore[1]!]).toEqual([0, 10]);

    const deleted = await setup.api('DELETE', `/backends/${id}`);
    expect(deleted.status).toBe(202);
    expect(deleted.json).toMatchObject({ id, state: 'draining', admin: 'remove', active_connections: 1 });
    expect(await held.exchange('three')).toBe('three');
    expect((await setup.list()).find((b) => b.id === id)).toMatchObject({ state: 'draining', admin: 'remove' });

    held.socket.end();
    const list = await eventually(async () => setup.list(), (l) => l.every((b) => b.id !== id));
    expect(list.map((b) => b.id)).toEqual([`web:${other.address}`]);
    const removed = await setup.daemon.waitForLog((l) => l.msg === 'backend health changed' && l['backend'] === id && l['to'] === 'removed');
    expect(removed['reason']).toBe('removed by an operator');
  });

  it('closes a backend’s open connections at once on DELETE ?force=true', async () => {
    const echoes = await backends(2, 'echo');
    const setup = await daemonWith(echoes.map((b) => b.address), { workers: 1 });
    const held = await openEcho(setup.port);
    cleanups.push(() => Promise.resolve(held.socket.destroy()));
    expect(await held.exchange('one')).toBe('one');
    const owner = echoes.find((b) => b.open.size === 1)!;
    const closed = new Promise<void>((resolve) => held.socket.once('close', () => resolve()));
    const forced = await setup.api('DELETE', `/backends/web:${owner.address}?force=true`);
    expect([200, 202]).toContain(forced.status);
    await closed;
    const list = await eventually(async () => setup.list(), (l) => l.length === 1);
    expect(list.map((b) => b.address)).toEqual([echoes.find((b) => b !== owner)!.address]);
  });
});

describe('refused requests', () => {
  it('answers twenty malformed requests with the right status and a message naming the problem, changing nothing', async () => {
    const [echo] = await backends(1, 'echo');
    const setup = await daemonWith([echo!.address]);
    const id = `web:${echo!.address}`;
    const before = await setup.list();
    const huge = JSON.stringify({ cluster: 'web', address: '127.0.0.1:1', pad: 'x'.repeat(100_000) });
    const cases: [string, string, unknown, number, string, RegExp][] = [
      ['POST', '/backends', '{"cluster": "web",', 400, 'BAD_JSON', /^body: not valid JSON$/],
      ['POST', '/backends', {}, 400, 'BAD_REQUEST', /^cluster: missing required key; address: missing required key$/],
      ['POST', '/backends', { cluster: 'web' }, 400, 'BAD_REQUEST', /^address: missing required key$/],
      ['POST', '/backends', { cluster: 'web', address: '127.0.0.1:0' }, 400, 'BAD_REQUEST', /^address: port must be 1-65535$/],
      ['POST', '/backends', { cluster: 'web', address: '127.0.0.1:70000' }, 400, 'BAD_REQUEST', /^address: port must be 1-65535$/],
      ['POST', '/backends', { cluster: 'web', address: '127.0.0.1' }, 400, 'BAD_REQUEST', /^address: expected host:port$/],
      ['POST', '/backends', { cluster: 'api', address: '127.0.0.1:9' }, 404, 'NOT_FOUND', /^unknown cluster "api"; known: web$/],
      ['POST', '/backends', huge, 413, 'BODY_TOO_LARGE', /^body: larger than 65536 bytes$/],
      ['POST', '/backends', { cluster: 'web', address: '127.0.0.1:9', weight: 'heavy' }, 400, 'BAD_REQUEST', /^weight: expected an integer from 0 to 10000$/],
      ['POST', '/backends', { cluster: 'web', address: '127.0.0.1:9', weight: 10_001 }, 400, 'BAD_REQUEST', /^weight: expected an integer from 0 to 10000$/],
      ['POST', '/backends', { cluster: 7, address: '127.0.0.1:9' }, 400, 'BAD_REQUEST', /^cluster: expected a cluster name$/],
      ['POST', '/backends', { cluster: 'web', address: echo!.address }, 409, 'CONFLICT', new RegExp(`already has a backend at ${echo!.address}`)],
      ['POST', '/backends', { cluster: 'web', address: '127.0.0.1:9', wieght: 2 }, 400, 'BAD_REQUEST', /unknown key "wieght"; allowed: cluster, address, weight/],
      ['POST', '/backends', [{ cluster: 'web' }], 400, 'BAD_REQUEST', /^body: expected a JSON object like/],
      ['PATCH', '/backends/web:127.0.0.1:1', { weight: 2 }, 404, 'NOT_FOUND', /^no backend web:127.0.0.1:1$/],
      ['PATCH', `/backends/${id}`, { weigh: 2 }, 400, 'BAD_REQUEST', /^weight: missing required key; body: unknown key "weigh"/],
      ['POST', '/backends/web:127.0.0.1:1/drain', undefined, 404, 'NOT_FOUND', /^no backend web:127.0.0.1:1$/],
      ['DELETE', '/backends/web:127.0.0.1:1', undefined, 404, 'NOT_FOUND', /^no backend web:127.0.0.1:1$/],
      ['DELETE', `/backends/${id}?force=yes`, undefined, 400, 'BAD_REQUEST', /^force: expected true or false$/],
      ['GET', '/backends/nothing', undefined, 404, 'NOT_FOUND', /^no backend nothing$/],
    ];
    expect(cases).toHaveLength(20);
    for (const [method, url, body, status, error, message] of cases) {
      const response = await setup.api(method, url, body);
      expect({ method, url, status: response.status }).toEqual({ method, url, status });
      const json = response.json as { error: string; message: string };
      expect(json.error).toBe(error);
      expect(json.message).toMatch(message);
    }
    expect(await setup.list()).toEqual(before);
    expect(((await setup.api('GET', '/snapshot')).json as { version: number }).version).toBe(1);
  });

  it('answers 401 without a token or with a wrong one, and 200 with it', async () => {
    const [echo] = await backends(1, 'echo');
    const setup = await daemonWith([echo!.address], { extra: ['token'], env: { TEST_ADMIN_TOKEN: 'hunter2-long-token' } });
    for (const headers of [{}, { authorization: 'Bearer wrong' }]) {
      for (const [method, url, body] of [['GET', '/backends', undefined], ['POST', '/backends', { cluster: 'web', address: '127.0.0.1:9' }], ['DELETE', `/backends/web:${echo!.address}`, undefined]] as const) {
        const response = await setup.api(method, url, body, headers);
        expect(response.status).toBe(401);
        expect((response.json as { error: string }).error).toBe('UNAUTHORIZED');
      }
    }
    expect((await setup.api('GET', '/healthz')).status).toBe(200);
    expect((await setup.api('GET', '/readyz')).status).toBe(200);
    const ok = await setup.api('GET', '/backends', undefined, { authorization: 'Bearer hunter2-long-token' });
    expect(ok.status).toBe(200);
    expect((ok.json as BackendJson[]).map((b) => b.state)).toEqual(['healthy']);
  });

  it('refuses to start when admin.token_env names an unset variable', async () => {
    const [port, adminPort] = (await freePorts(2)) as [number, number];
    const child = runCli(['run', '--config', writeConfig(yamlFor({ port, adminPort, addresses: ['127.0.0.1:9'], extra: ['token'] }))]);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toContain('admin.token_env names TEST_ADMIN_TOKEN, which is not set');
  });
});

describe('state file', () => {
  it('keeps added, removed, drained and reweighted backends across a restart', async () => {
    const echoes = await backends(4, 'echo');
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-state-'));
    const stateFile = path.join(dir, 'state.json');
    const ports = (await freePorts(2)) as [number, number];
    const config = { extra: [`state_file: ${JSON.stringify(stateFile)}`], ports, configFile: writeConfig(yamlFor({ port: ports[0], adminPort: ports[1], addresses: echoes.slice(0, 3).map((b) => b.address), extra: [`state_file: ${JSON.stringify(stateFile)}`] })) };
    const first = await daemonWith(echoes.slice(0, 3).map((b) => b.address), config);
    const [a, b, c, d] = echoes.map((e) => `web:${e.address}`) as [string, string, string, string];
    expect((await first.api('POST', '/backends', { cluster: 'web', address: echoes[3]!.address, weight: 4 })).status).toBe(201);
    expect((await first.api('PATCH', `/backends/${a}`, { weight: 7 })).status).toBe(200);
    expect((await first.api('POST', `/backends/${b}/drain`)).status).toBe(200);
    expect((await first.api('DELETE', `/backends/${c}`)).status).toBe(200);
    const expected = (await first.list()).map((x) => [x.id, x.weight, x.state, x.admin]);
    expect(expected).toEqual([
      [a, 7, 'healthy', 'none'],
      [b, 1, 'draining', 'drain'],
      [d, 4, 'healthy', 'none'],
    ]);
    expect(await first.daemon.stop('SIGTERM')).toBe(0);

    const second = await daemonWith([], config);
    expect((await second.list()).map((x) => [x.id, x.weight, x.state, x.admin])).toEqual(expected);
    expect(second.daemon.logs.some((l) => l.msg === 'state file applied on top of config.yaml')).toBe(true);
    // Clients follow the restored state: the drained and removed backends get nothing.
    const acceptedBefore = echoes.map((e) => e.accepted);
    await Promise.all(Array.from({ length: 12 }, async () => roundTrip(second.port, Buffer.from('x'))));
    const gained = echoes.map((e, i) => e.accepted - acceptedBefore[i]!);
    expect(gained[1]).toBe(0);
    expect(gained[2]).toBe(0);
    expect(gained[0]! + gained[3]!).toBe(12);
    expect(await second.daemon.stop('SIGTERM')).toBe(0);

    // A truncated file is reported and set aside; the daemon starts from config.yaml.
    const text = readFileSync(stateFile, 'utf8');
    writeFileSync(stateFile, text.slice(0, Math.floor(text.length / 2)));
    const third = await daemonWith([], config);
    const report = await third.daemon.waitForLog((l) => l.msg === 'state file is unusable: set aside; starting from config.yaml alone');
    expect(report['problem']).toMatch(/^not valid JSON/);
    expect(existsSync(report['setAsideTo'] as string)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.includes('.corrupt-'))).toHaveLength(1);
    expect((await third.list()).map((x) => [x.id, x.weight, x.state])).toEqual([
      [a, 1, 'healthy'],
      [b, 1, 'healthy'],
      [c, 1, 'healthy'],
    ]);
  });
});

describe('concurrent writes', () => {
  it('applies 200 interleaved adds and drains as if one by one, with strictly increasing versions', async () => {
    const configured = Array.from({ length: 20 }, (_, i) => `127.0.1.${i + 1}:9000`);
    const setup = await daemonWith(configured, { workers: 1 });
    const addedAddresses = Array.from({ length: 100 }, (_, i) => `127.0.2.${i + 1}:9000`);
    type Write = { op: 'add'; address: string } | { op: 'drain'; address: string };
    // Adds interleaved with drains of config backends and of backends added 20 writes
    // earlier, all sent at once: a drain may still reach the control plane before its add.
    const order: Write[] = [];
    for (let i = 0; i < 100; i++) {
      order.push({ op: 'add', address: addedAddresses[i]! });
      order.push({ op: 'drain', address: i < 20 ? configured[i]! : addedAddresses[i - 20]! });
    }
    expect(order).toHaveLength(200);
    const results = await Promise.all(
      order.map(async (w) =>
        w.op === 'add' ? { w, ...(await setup.api('POST', '/backends', { cluster: 'web', address: w.address })) } : { w, ...(await setup.api('POST', `/backends/web:${w.address}/drain`, {})) },
      ),
    );
    const applied = results.filter((r) => r.status === 200 || r.status === 201).map((r) => ({ w: r.w, version: (r.json as BackendJson).snapshot_version! }));
    const refused = results.filter((r) => r.status !== 200 && r.status !== 201);
    // Only a drain that reached the control plane before its backend's add can be refused.
    expect(refused.every((r) => r.w.op === 'drain' && r.status === 404)).toBe(true);
    applied.sort((x, y) => x.version - y.version);
    const versions = applied.map((x) => x.version);
    expect(new Set(versions).size).toBe(versions.length);
    expect(versions).toEqual([...Array(applied.length).keys()].map((i) => 2 + i));

    // Replay the applied writes one by one, in version order, on a model.
    const model = new Map<string, boolean>(configured.map((a) => [a, false]));
    for (const { w } of applied) {
      if (w.op === 'add') model.set(w.address, false);
      else model.set(w.address, true);
    }
    const list = await setup.list();
    expect(list.map((b) => [b.address, b.admin === 'drain'])).toEqual([...model.entries()]);
    console.log(`200 concurrent writes: ${applied.length} applied (versions 2..${versions.at(-1)}), ${refused.length} drains refused before their add`);
  });
});

describe('sluice ctl', () => {
  async function ctl(setup: Setup, args: string[], token = 'ctl-token'): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return runToExit(['ctl', ...args], { SLUICE_ADMIN_URL: setup.daemon.adminUrl, SLUICE_ADMIN_TOKEN: token });
  }

  it('lists, adds, reweights, drains, undrains and removes through the API, printing tables', async () => {
    const [echo, extra] = await backends(2, 'echo');
    const setup = await daemonWith([echo!.address], { extra: ['token'], env: { TEST_ADMIN_TOKEN: 'ctl-token' } });
    const id = `web:${extra!.address}`;

    const added = await ctl(setup, ['add', 'web', extra!.address, '--weight', '3']);
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(/^ID\s+STATE\s+WEIGHT\s+ACTIVE\s+REASON\n/);
    expect(added.stdout).toContain(`${id}  healthy  3`);
    expect(added.stdout).toMatch(/snapshot version 2\n$/);

    expect((await ctl(setup, ['weight', id, '5'])).stdout).toContain(`${id}  healthy  5`);
    expect((await ctl(setup, ['drain', id])).stdout).toContain(`${id}  draining (admin)`);
    expect((await ctl(setup, ['undrain', id])).stdout).toContain(`${id}  healthy`);
    const list = await ctl(setup, ['list']);
    expect(list.stdout.trim().split('\n')).toHaveLength(3);
    expect(list.stdout).toContain(`web:${echo!.address}`);
    expect((await ctl(setup, ['remove', id])).stdout).toContain(id);
    expect((await ctl(setup, ['list'])).stdout).not.toContain(id);

    const missing = await ctl(setup, ['drain', 'web:127.0.0.1:1']);
    expect([missing.code, missing.stderr.trim()]).toEqual([1, 'sluice ctl: 404 NOT_FOUND: no backend web:127.0.0.1:1']);
    const denied = await ctl(setup, ['list'], 'wrong');
    expect([denied.code, denied.stderr.trim()]).toEqual([1, 'sluice ctl: 401 UNAUTHORIZED: wrong token']);
    const usage = await ctl(setup, ['weight', id]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('weight takes 2 arguments, got 1');
  }, 180_000); // ten `sluice ctl` processes, each a Node start-up: slow on a loaded machine
});
