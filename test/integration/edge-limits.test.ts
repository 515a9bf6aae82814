/**
 * Per-source-IP limits, max_connections and allow/deny lists through the real daemon.
 * Clients bind 127.0.0.N to appear as distinct IPs; the daemon runs two workers, so the
 * kernel (SO_REUSEPORT) spreads one client's connections over both.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { runCli, startDaemon, type Daemon } from '../helpers/daemon.ts';
import { closeAll, holdServed, listenerStats, probe } from '../helpers/edge.ts';
import { freePorts } from '../helpers/ports.ts';
import { eventually, getJson } from '../helpers/client.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function edgeYaml(options: { port: number; adminPort: number; backend: string; workers?: number; listener: string[] }): string {
  return `workers: ${options.workers ?? 2}
admin:
  listen: 127.0.0.1:${options.adminPort}
shutdown:
  drain_timeout: 2s
listeners:
  - name: edge
    listen: 127.0.0.1:${options.port}
    cluster: web
${options.listener.map((line) => `    ${line}`).join('\n')}
clusters:
  - name: web
    backends:
      - { address: ${options.backend} }
`;
}

async function setup(listener: string[], options: { workers?: number; env?: Record<string, string> } = {}): Promise<{ daemon: Daemon; port: number; backend: TestBackend }> {
  const backend = await startBackend('echo');
  cleanups.push(async () => backend.close());
  const [port, adminPort] = await freePorts(2);
  const yaml = edgeYaml({ port: port!, adminPort: adminPort!, backend: backend.address, listener, ...(options.workers === undefined ? {} : { workers: options.workers }) });
  const daemon = await startDaemon(yaml, adminPort!, options.env === undefined ? {} : { env: options.env });
  cleanups.push(async () => daemon.stop('SIGKILL'));
  return { daemon, port: port!, backend };
}

function held(sockets: net.Socket[]): net.Socket[] {
  cleanups.push(async () => closeAll(sockets));
  return sockets;
}

describe('per_ip_connections', () => {
  it('refuses the 11th concurrent connection from 127.0.0.2 on every worker, serves 127.0.0.3, and serves 127.0.0.2 again once the 10 close', async () => {
    const { daemon, port } = await setup(['limits: {per_ip_connections: 10}']);
    const ten = held(await Promise.all(Array.from({ length: 10 }, async () => holdServed(port, '127.0.0.2'))));
    // The 10 raced each other over both workers; every one must be counted, none admitted untracked.
    expect((await listenerStats(daemon.adminUrl, 'edge')).limits_table_full_total).toBe(0);

    // Each attempt has a new source port, so the kernel hashes it to either worker.
    const eleventh: string[] = [];
    for (let i = 0; i < 8; i++) eleventh.push(await probe(port, '127.0.0.2'));
    expect(eleventh).toEqual(Array<string>(8).fill('refused'));
    expect(await probe(port, '127.0.0.3')).toBe('served');
    expect((await listenerStats(daemon.adminUrl, 'edge')).refused_total['per_ip_connections']).toBe(8);

    await closeAll(ten);
    // The daemon sees the closes a moment later; poll.
    expect(await eventually(async () => probe(port, '127.0.0.2'), (r) => r === 'served')).toBe('served');
  });

  it('gives back the counts of a crashed worker: its clients may connect again', async () => {
    const { daemon, port } = await setup(['limits: {per_ip_connections: 5}'], { workers: 1, env: { SLUICE_FAULT_INJECTION: '1' } });
    held(await Promise.all(Array.from({ length: 5 }, async () => holdServed(port, '127.0.0.2'))));
    expect(await probe(port, '127.0.0.2')).toBe('refused');
    const crashed = await fetch(`${daemon.adminUrl}/debug/workers/0/crash`, { method: 'POST' });
    expect(crashed.status).toBe(202);
    await daemon.waitForLog((l) => l.msg === 'data-plane worker restarted');
    // All 5 died with the worker; without giving their counts back, these would be refused.
    held(await Promise.all(Array.from({ length: 5 }, async () => holdServed(port, '127.0.0.2'))));
    expect(await probe(port, '127.0.0.2')).toBe('refused');
  });
});

describe('per_ip_rate', () => {
  it('accepts 20 + 20/s connections from one client at 20/s with burst 20, refuses and counts the rest', async () => {
    const { daemon, port, backend } = await setup(['limits: {per_ip_rate: 20/s, burst: 20}']);
    const started = Date.now();
    let served = 0;
    let refused = 0;
    // At least 3 s, and on until the rate was clearly exceeded: a slow machine makes fewer
    // attempts per second, so it attempts for longer instead of failing for want of them.
    const lane = async (): Promise<void> => {
      while ((Date.now() - started < 3000 || refused < 40) && Date.now() - started < 20_000) {
        if ((await probe(port, '127.0.0.2')) === 'served') served++;
        else refused++;
      }
    };
    await Promise.all([lane(), lane()]);
    const seconds = (Date.now() - started) / 1000;
    console.log(`per_ip_rate 20/s, burst 20: ${served} served, ${refused} refused in ${seconds.toFixed(2)} s`);
    expect(refused).toBeGreaterThanOrEqual(40);
    // The bucket holds 20 and gains 20 a second from the first attempt on: never more than
    // that, however slow the machine. While attempts outpace the rate each new token is
    // taken within one attempt's latency, so at most the last half second's go unused.
    expect(served).toBeLessThanOrEqual(20 + 20 * seconds + 1);
    expect(served).toBeGreaterThanOrEqual(20 + 20 * (seconds - 0.5) - 1);
    expect(backend.accepted).toBe(served);
    const stats = await listenerStats(daemon.adminUrl, 'edge');
    expect(stats.refused_total['per_ip_rate']).toBe(refused);
    expect(stats.accepted_total).toBe(served + refused);
    // Another client has its own bucket.
    expect(await probe(port, '127.0.0.3')).toBe('served');
  });
});

describe('max_connections', () => {
  it('bounds the listener total over all clients and workers', async () => {
    const { daemon, port } = await setup(['limits: {max_connections: 4}']);
    const four = held(await Promise.all(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'].map(async (ip) => holdServed(port, ip))));
    for (const ip of ['127.0.0.6', '127.0.0.7', '127.0.0.2']) expect(await probe(port, ip)).toBe('refused');
    expect((await listenerStats(daemon.adminUrl, 'edge')).refused_total['max_connections']).toBe(3);
    await closeAll(four.slice(0, 1));
    expect(await eventually(async () => probe(port, '127.0.0.6'), (r) => r === 'served')).toBe('served');
  });
});

describe('acl', () => {
  it('refuses a denied CIDR before any backend sees it, and applies a reloaded acl to the next connection', async () => {
    const { daemon, port, backend } = await setup(['acl: {deny: [127.0.0.4/32, "::ffff:127.0.1.0/120"]}']);
    expect(await probe(port, '127.0.0.4')).toBe('refused');
    expect(await probe(port, '127.0.1.9')).toBe('refused');
    expect(backend.accepted).toBe(0);
    expect(await probe(port, '127.0.0.5')).toBe('served');
    expect(backend.accepted).toBe(1);
    expect((await listenerStats(daemon.adminUrl, 'edge')).refused_total['acl']).toBe(2);
    const metrics = await (await fetch(`${daemon.adminUrl}/metrics`)).text();
    expect(metrics).toContain('sluice_listener_refused_total{listener="edge",reason="acl"} 2\n');

    // Swap the lists in the file; SIGHUP; no restart.
    const before = daemon.logs.length;
    const text = readFileSync(daemon.configFile, 'utf8');
    writeFileSync(daemon.configFile, text.replace('acl: {deny: [127.0.0.4/32, "::ffff:127.0.1.0/120"]}', 'acl: {allow: [127.0.0.0/30], deny: [127.0.0.2/32]}'));
    daemon.child.kill('SIGHUP');
    await daemon.waitForLog((l) => l.msg === 'config reloaded' && daemon.logs.indexOf(l) >= before);
    expect(await probe(port, '127.0.0.4')).toBe('refused'); // outside the allow list
    expect(await probe(port, '127.0.0.2')).toBe('refused'); // allowed, but denied
    expect(await probe(port, '127.0.0.3')).toBe('served');
    expect(await probe(port, '127.0.0.1')).toBe('served');
    const stats = await listenerStats(daemon.adminUrl, 'edge');
    expect(stats.acl).toEqual({ allow: ['127.0.0.0/30'], deny: ['127.0.0.2/32'] });
    expect(stats.refused_total['acl']).toBe(4);
    expect(daemon.child.exitCode).toBeNull();
  });

  it('applies an acl changed through the admin API to the next connection, with no restart, and keeps it across a reload', async () => {
    const { daemon, port, backend } = await setup(['acl: {deny: [127.0.0.4/32]}']);
    expect(await probe(port, '127.0.0.5')).toBe('served');
    const pid = daemon.child.pid;

    const put = await fetch(`${daemon.adminUrl}/listeners/edge/acl`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ deny: ['127.0.0.5/32'] }),
    });
    expect(put.status).toBe(200);
    const answer = (await put.json()) as { deny: string[]; snapshot_version: number };
    expect(answer.deny).toEqual(['127.0.0.5/32']);
    // The answer comes once the snapshot holding the acl is published: the very next
    // connection is checked against it.
    expect(await probe(port, '127.0.0.5')).toBe('refused');
    expect(await probe(port, '127.0.0.4')).toBe('served');
    expect(backend.accepted).toBe(2);
    expect(await getJson(`${daemon.adminUrl}/listeners/edge/acl`)).toEqual({ listener: 'edge', allow: [], deny: ['127.0.0.5/32'] });

    // A reload that leaves the file's acl as it was keeps the operator's acl.
    const before = daemon.logs.length;
    daemon.child.kill('SIGHUP');
    await daemon.waitForLog((l) => l.msg === 'config reloaded' && daemon.logs.indexOf(l) >= before);
    expect(await probe(port, '127.0.0.5')).toBe('refused');

    const bad = await fetch(`${daemon.adminUrl}/listeners/edge/acl`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ deny: ['127.0.0.5/24'] }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'BAD_REQUEST', message: 'deny.0: "127.0.0.5/24" has host bits set; did you mean 127.0.0.0/24?' });
    expect(await probe(port, '127.0.0.5')).toBe('refused');

    // The same through `sluice ctl`: show, then clear.
    expect(await ctl(daemon.adminUrl, ['acl', 'edge'])).toEqual({ code: 0, output: 'listener edge\nallow  (all)\ndeny   127.0.0.5/32\n' });
    const cleared = await ctl(daemon.adminUrl, ['acl', 'edge', '--clear']);
    expect(cleared.code).toBe(0);
    expect(cleared.output.replace(/\d+\n$/, 'N')).toBe('listener edge\nallow  (all)\ndeny   (none)\nsnapshot version N');
    expect(await probe(port, '127.0.0.5')).toBe('served');
    expect(daemon.child.pid).toBe(pid);
    expect(daemon.child.exitCode).toBeNull();
  });
});

async function ctl(adminUrl: string, args: string[]): Promise<{ code: number | null; output: string }> {
  const child = runCli(['ctl', '--admin', adminUrl, ...args]);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, output };
}
