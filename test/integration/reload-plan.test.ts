/**
 * Reloads through a real daemon: a backend restored by the next reload is back in service
 * (issue #19 defect 2), changes over a capacity limit are refused whole while the daemon
 * keeps serving (defect 3), `validate` names the same limits as `run`, a listener whose port
 * is taken shows as failed, and dropped state-file entries are logged.
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { eventually, getJson, openEcho, roundTrip } from '../helpers/client.ts';
import { runToExit, startDaemon, writeConfig, type Daemon } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function echo(): Promise<TestBackend> {
  const backend = await startBackend('echo');
  cleanups.push(async () => backend.close());
  return backend;
}

async function daemon(yaml: string, adminPort: number, options: Parameters<typeof startDaemon>[2] = {}): Promise<Daemon> {
  const d = await startDaemon(yaml, adminPort, options);
  cleanups.push(async () => d.stop('SIGKILL'));
  return d;
}

interface BackendJson {
  readonly id: string;
  readonly state: string;
  readonly admin: string;
}

function config(adminPort: number, port: number, backends: readonly string[], extra = ''): string {
  return `workers: 1
admin: {listen: 127.0.0.1:${adminPort}}
listeners:
  - {name: web, listen: 127.0.0.1:${port}, cluster: web}
${extra}clusters:
  - name: web
    health_check: {type: tcp, interval: 200ms, timeout: 150ms, rise: 1, fall: 1}
    backends: [${backends.map((a) => `{address: "${a}"}`).join(', ')}]
`;
}

async function reload(d: Daemon, yaml: string, query = ''): Promise<{ status: number; body: Record<string, unknown> }> {
  writeFileSync(d.configFile, yaml);
  const response = await fetch(`${d.adminUrl}/config/reload${query}`, { method: 'POST' });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('a backend removed by one reload and restored by the next', () => {
  it('is in service again, with its connection open across both reloads', async () => {
    const b = await echo();
    const [port, adminPort] = await freePorts(2);
    const d = await daemon(config(adminPort!, port!, [b.address]), adminPort!);
    const held = await openEcho(port!);
    cleanups.push(() => Promise.resolve(held.socket.destroy()));
    expect(await held.exchange('before')).toBe('before');

    expect((await reload(d, config(adminPort!, port!, []))).status).toBe(200);
    const removing = await getJson<BackendJson[]>(`${d.adminUrl}/backends`);
    expect(removing.map((x) => [x.id, x.state, x.admin])).toEqual([[`web:${b.address}`, 'draining', 'remove']]);

    const restored = await reload(d, config(adminPort!, port!, [b.address]));
    expect(restored.status).toBe(200);
    expect(await held.exchange('during')).toBe('during');
    held.socket.destroy();

    const settled = await eventually(
      async () => getJson<BackendJson[]>(`${d.adminUrl}/backends`),
      (list) => list.length === 1 && list[0]?.state === 'healthy' && list[0].admin === 'none',
    );
    expect(settled.map((x) => [x.state, x.admin])).toEqual([['healthy', 'none']]);
    expect((await roundTrip(port!, Buffer.from('routed'))).toString()).toBe('routed');
    expect((restored.body['backends'] as { restore: { address: string }[] }).restore.map((x) => x.address)).toEqual([b.address]);
    // A later reload of the same file is a no-op, not a loss.
    const again = await reload(d, config(adminPort!, port!, [b.address]));
    expect((again.body['backends'] as { keep: string[] }).keep).toEqual([`web:${b.address}`]);
  });
});

/** `count` backend entries on ports from `first` that nothing listens on (no active check). */
function bulk(first: number, count: number): string {
  return Array.from({ length: count }, (_, i) => `      - {address: "127.0.0.2:${first + i}"}`).join('\n');
}

function bulkConfig(adminPort: number, port: number, web: string, bulkEntries: string, extra = ''): string {
  return `workers: 1
admin: {listen: 127.0.0.1:${adminPort}}
listeners:
  - {name: web, listen: 127.0.0.1:${port}, cluster: web}
${extra}clusters:
  - name: web
    backends: [{address: "${web}"}]
  - name: bulk
    backends:
${bulkEntries}
`;
}

describe('capacity limits', () => {
  it('refuses a reload swapping 9,000 backends for 9,000 others whole: it keeps serving and writes still work', async () => {
    const b = await echo();
    const [port, adminPort] = await freePorts(2);
    const d = await daemon(bulkConfig(adminPort!, port!, b.address, bulk(20_000, 9000)), adminPort!);
    const held = await openEcho(port!);
    cleanups.push(() => Promise.resolve(held.socket.destroy()));

    const dry = await reload(d, bulkConfig(adminPort!, port!, b.address, bulk(40_000, 9000)), '?dry_run=true');
    expect(dry.status).toBe(200);
    expect(dry.body['status']).toBe('dry_run');
    expect((dry.body['limits'] as { limit: string; needed: number; bound: number }[]).map((l) => [l.limit, l.needed, l.bound])).toEqual([['backend_slots', 18_001, 16_384]]);

    const refused = await reload(d, bulkConfig(adminPort!, port!, b.address, bulk(40_000, 9000)));
    expect(refused.status).toBe(507);
    expect(refused.body['error']).toBe('NO_CAPACITY');
    expect(refused.body['message']).toBe(
      'backend_slots: needs 18001 backend counter slots, the limit is 16384 (capacity.backends; a removed backend keeps its slot until its connections closed)',
    );
    expect(await held.exchange('still')).toBe('still');
    expect((await roundTrip(port!, Buffer.from('new'))).toString()).toBe('new');
    const backends = await getJson<BackendJson[]>(`${d.adminUrl}/backends`);
    expect([backends.length, backends.filter((x) => x.id.startsWith('bulk:127.0.0.2:4')).length]).toEqual([9001, 0]);
    const added = await fetch(`${d.adminUrl}/backends`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cluster: 'web', address: '127.0.0.1:1' }),
    });
    expect(added.status).toBe(201);
  });

  it('answers POST /backends at the slot limit with 507 naming it', async () => {
    const b = await echo();
    const [port, adminPort] = await freePorts(2);
    const d = await daemon(bulkConfig(adminPort!, port!, b.address, bulk(20_000, 16_383)), adminPort!);
    const response = await fetch(`${d.adminUrl}/backends`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cluster: 'web', address: '127.0.0.1:2' }),
    });
    expect(response.status).toBe(507);
    expect(await response.json()).toEqual({
      error: 'NO_CAPACITY',
      message: 'cannot add web:127.0.0.1:2: backend_slots: needs 16385 backend counter slots, the limit is 16384 (capacity.backends; a removed backend keeps its slot until its connections closed)',
    });
    expect((await roundTrip(port!, Buffer.from('serving'))).toString()).toBe('serving');
  });

  it('validate and run refuse 16,385 backends naming the limit', async () => {
    const [port, adminPort] = await freePorts(2);
    const file = writeConfig(bulkConfig(adminPort!, port!, '127.0.0.1:1', bulk(20_000, 16_384)));
    const validated = await runToExit(['validate', '--config', file]);
    expect(validated.code).toBe(1);
    expect(validated.stderr).toContain('needs 16385 backend counter slots, the limit is 16384');
    const ran = await runToExit(['run', '--config', file]);
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain('needs 16385 backend counter slots, the limit is 16384');
    expect(ran.stderr).not.toContain('    at ');
  });

  it('refuses a config whose snapshot outgrows its slot: validate, run and reload, with the size and the bound', async () => {
    const b = await echo();
    const [port, adminPort, ...ports] = await freePorts(22);
    // 20 listeners sharing one 10,000-block acl of long IPv6 addresses: about 9 MB of snapshot.
    const blocks = Array.from({ length: 10_000 }, (_, i) => `"2001:db8:abcd:${(0x1000 + i).toString(16)}:1111:2222:3333:4444/128"`).join(', ');
    const listeners = ports
      .map((p, i) => `  - {name: l${i}, listen: 127.0.0.1:${p}, cluster: web, acl: ${i === 0 ? `&acl {deny: [${blocks}]}` : '*acl'}}`)
      .join('\n');
    const heavy = config(adminPort!, port!, [b.address], `${listeners}\n`);
    const file = writeConfig(heavy);
    const bound = 'a snapshot slot holds 8388608 bytes';
    const validated = await runToExit(['validate', '--config', file]);
    expect([validated.code, validated.stderr]).toEqual([1, expect.stringMatching(/snapshot_bytes: the snapshot would encode to \d+ bytes, a snapshot slot holds 8388608 bytes/)]);
    const ran = await runToExit(['run', '--config', file]);
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain(bound);
    expect(ran.stderr).not.toContain('    at ');

    const d = await daemon(config(adminPort!, port!, [b.address]), adminPort!);
    const refused = await reload(d, heavy);
    expect(refused.status).toBe(507);
    expect((refused.body['limits'] as { code: string }[]).map((l) => l.code)).toEqual(['SLUICE_SNAPSHOT_TOO_LARGE']);
    expect(refused.body['message']).toContain(bound);
    expect((await getJson<unknown[]>(`${d.adminUrl}/listeners`)).length).toBe(1);
    expect((await roundTrip(port!, Buffer.from('kept'))).toString()).toBe('kept');
  });
});

describe('a reload whose new listener cannot listen', () => {
  it('answers partial and GET /listeners shows the listener failed, with why', async () => {
    const b = await echo();
    const [port, takenPort, adminPort] = await freePorts(3);
    const squatter = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => squatter.listen({ port: takenPort, host: '127.0.0.1' }, resolve));
    cleanups.push(async () => new Promise((resolve) => squatter.close(resolve)));
    const d = await daemon(config(adminPort!, port!, [b.address]), adminPort!);

    const answer = await reload(d, config(adminPort!, port!, [b.address], `  - {name: extra, listen: 127.0.0.1:${takenPort}, cluster: web}\n`));
    expect(answer.status).toBe(200);
    expect(answer.body['status']).toBe('partial');
    expect(answer.body['failures']).toEqual([`listener extra: 127.0.0.1:${takenPort} is already in use (EADDRINUSE)`]);
    const listeners = await getJson<{ name: string; status: string; error?: string }[]>(`${d.adminUrl}/listeners`);
    expect(listeners.map((l) => [l.name, l.status, l.error])).toEqual([
      ['web', 'serving', undefined],
      ['extra', 'failed', `127.0.0.1:${takenPort} is already in use (EADDRINUSE)`],
    ]);
  });
});

describe('the state file', () => {
  it('logs each entry naming an unknown cluster or listener as it is dropped', async () => {
    const b = await echo();
    const [port, adminPort] = await freePorts(2);
    const dir = path.dirname(writeConfig(''));
    const stateFile = path.join(dir, 'state.json');
    writeFileSync(
      stateFile,
      JSON.stringify({
        format: 1,
        written_at: '2026-01-01T00:00:00.000Z',
        added: [{ cluster: 'gone', address: '127.0.0.1:9', weight: 1 }],
        removed: [],
        drained: [],
        weights: {},
        routes: { nolistener: [{ cluster: 'web', weight: 1 }] },
      }),
    );
    const d = await daemon(`state_file: ${stateFile}\n${config(adminPort!, port!, [b.address])}`, adminPort!);
    const dropped = d.logs.filter((l) => l.msg === 'state file entry dropped: config.yaml does not declare what it names');
    expect(dropped.map((l) => [l['section'], l['entry'], l['problem'], l.level])).toEqual([
      ['added', { cluster: 'gone', address: '127.0.0.1:9', weight: 1 }, 'unknown cluster "gone"', 40],
      ['routes', { nolistener: [{ cluster: 'web', weight: 1 }] }, 'unknown listener "nolistener"', 40],
    ]);
  });
});
