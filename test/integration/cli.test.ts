import { execFile } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { runToExit, startDaemon, tcpConfig, writeConfig } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function portIsFree(port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const VALID = `listeners:
  - name: web
    listen: 127.0.0.1:18080
    cluster: web
clusters:
  - name: web
    backends:
      - { address: 127.0.0.1:9001 }
`;

describe('sluice validate', () => {
  it('accepts a good file and says what it holds', async () => {
    const file = writeConfig(VALID);
    const { code, stdout } = await runToExit(['validate', '--config', file]);
    expect(code).toBe(0);
    expect(stdout).toContain('ok (1 listeners, 1 clusters, 1 backends');
  });

  it.each([
    ['a YAML syntax error', 'listeners: [\n', /:2:1 \(syntax\): /],
    ['a bad listen address', VALID.replace('127.0.0.1:18080', 'nowhere'), /:3:13 listeners\[0\]\.listen: expected host:port/],
    ['a port out of range', VALID.replace('127.0.0.1:9001', '127.0.0.1:70000'), /:8:20 clusters\[0\]\.backends\[0\]\.address: port must be 1-65535/],
    ['an unknown cluster', VALID.replace('cluster: web', 'cluster: api'), /:4:14 listeners\[0\]\.cluster: unknown cluster "api"; known: web/],
    ['a bad duration', VALID.replace('    backends:', '    connect_timeout: soon\n    backends:'), /:7:22 clusters\[0\]\.connect_timeout: expected a duration like 500ms, 2s or 5m/],
    ['a misspelt key', VALID.replace('listen:', 'lisen:'), /listeners\[0\]: unknown key "lisen" \(did you mean "listen"\?\)/],
    ['a wrong type', VALID.replace('{ address: 127.0.0.1:9001 }', '{ address: 127.0.0.1:9001, weight: heavy }'), /clusters\[0\]\.backends\[0\]\.weight: /],
  ])('rejects %s with file:line:col path: message and exit 1', async (_kind, yaml, expected) => {
    const file = writeConfig(yaml);
    const { code, stderr } = await runToExit(['validate', '--config', file]);
    expect(code).toBe(1);
    expect(stderr).toContain(file);
    expect(stderr).toMatch(expected);
  });

  it('reports every error of a file at once', async () => {
    const yaml = VALID.replace('127.0.0.1:18080', 'nowhere').replace('127.0.0.1:9001', '127.0.0.1:0');
    const { code, stderr } = await runToExit(['validate', '--config', writeConfig(yaml)]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/listeners\[0\]\.listen: expected host:port/);
    expect(stderr).toMatch(/clusters\[0\]\.backends\[0\]\.address: port must be 1-65535/);
  });

  it('names a missing file', async () => {
    const { code, stderr } = await runToExit(['validate', '--config', '/nonexistent/sluice.yaml']);
    expect(code).toBe(1);
    expect(stderr).toContain('/nonexistent/sluice.yaml');
    expect(stderr).toContain('ENOENT');
  });
});

describe('bin/sluice', () => {
  it('runs on the pinned Node 24 even when the node on PATH is the system one', async () => {
    const bin = fileURLToPath(new URL('../../bin/sluice', import.meta.url));
    const config = fileURLToPath(new URL('../../config.yaml', import.meta.url));
    const result = await new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile(bin, ['validate', '--config', config], { env: { PATH: '/usr/local/bin:/usr/bin:/bin' } }, (error, stdout) => {
        resolve({ code: error === null ? 0 : Number(error.code), stdout });
      });
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('config.yaml: ok');
  });
});

describe('sluice run', () => {
  it('exits 1 on a broken config without binding anything', async () => {
    const [port, adminPort] = await freePorts(2);
    const yaml = tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: ['127.0.0.1:1'] }).replace('connect_timeout: 2s', 'connect_timeout: never');
    const { code, stderr } = await runToExit(['run', '--config', writeConfig(yaml)]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/clusters\[0\]\.connect_timeout: expected a duration/);
    expect(await portIsFree(port!)).toBe(true);
    expect(await portIsFree(adminPort!)).toBe(true);
  });

  it('exits 1 naming the listener when its port is taken, and releases the admin port', async () => {
    const [port, adminPort] = await freePorts(2);
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    cleanups.push(async () => new Promise((resolve) => squatter.close(resolve)));
    const { code, stderr } = await runToExit(['run', '--config', writeConfig(tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: ['127.0.0.1:1'] }))]);
    expect(code).toBe(1);
    expect(stderr).toContain(`listener web: 127.0.0.1:${port} is already in use (EADDRINUSE)`);
    expect(await portIsFree(adminPort!)).toBe(true);
  });

  it('exits 1 naming the listener when another process shares its port through SO_REUSEPORT (a second instance)', async () => {
    const [port, adminPort] = await freePorts(2);
    // As a running Sluice holds it: the kernel would let a second SO_REUSEPORT bind share it.
    const first = net.createServer();
    await new Promise<void>((resolve) => first.listen({ port, host: '127.0.0.1', reusePort: true }, resolve));
    cleanups.push(async () => new Promise((resolve) => first.close(resolve)));
    const { code, stderr } = await runToExit(['run', '--config', writeConfig(tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: ['127.0.0.1:1'] }))]);
    expect(code).toBe(1);
    expect(stderr).toContain(`listener web: 127.0.0.1:${port} is already in use (EADDRINUSE)`);
    expect(await portIsFree(adminPort!)).toBe(true);
  });

  it('exits 1 when the admin port is taken', async () => {
    const [port, adminPort] = await freePorts(2);
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(adminPort, '127.0.0.1', resolve));
    cleanups.push(async () => new Promise((resolve) => squatter.close(resolve)));
    const { code, stderr } = await runToExit(['run', '--config', writeConfig(tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: ['127.0.0.1:1'] }))]);
    expect(code).toBe(1);
    expect(stderr).toContain(`admin: 127.0.0.1:${adminPort} is already in use (EADDRINUSE)`);
    expect(await portIsFree(port!)).toBe(true);
  });

  it('serves /healthz and /readyz', async () => {
    const backend = await startBackend('echo');
    cleanups.push(async () => backend.close());
    const [port, adminPort] = await freePorts(2);
    const daemon = await startDaemon(tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: [backend.address] }), adminPort!);
    cleanups.push(async () => daemon.stop('SIGKILL'));
    expect((await fetch(`${daemon.adminUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${daemon.adminUrl}/readyz`)).status).toBe(200);
  });
});
