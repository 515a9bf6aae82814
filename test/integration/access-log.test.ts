import net from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { connect, eventually, roundTrip } from '../helpers/client.ts';
import { runCli, startDaemon, tcpConfig, writeConfig, type Daemon } from '../helpers/daemon.ts';
import { scrape, total } from '../helpers/metrics.ts';
import { freePorts } from '../helpers/ports.ts';
import { completeJsonLines } from '../helpers/json-lines.ts';

interface AccessLine {
  msg: string;
  log: string;
  worker: number;
  listener: string;
  client: string;
  cluster: string | null;
  backend: string | null;
  attempts: number;
  bytes_from_client: number;
  bytes_to_client: number;
  duration_ms: number;
  connect_ms: number | null;
  reason: string;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempFile(name: string): string {
  return path.join(mkdtempSync(path.join(tmpdir(), 'sluice-access-')), name);
}

function readLines(file: string): AccessLine[] {
  return completeJsonLines<AccessLine>(file);
}

async function waitForLines(file: string, count: number): Promise<AccessLine[]> {
  return eventually(async () => Promise.resolve(readLines(file)), (lines) => lines.length >= count);
}

async function start(yaml: string): Promise<Daemon> {
  const adminPort = Number(/listen: 127\.0\.0\.1:(\d+)/.exec(yaml)?.[1]);
  const daemon = await startDaemon(yaml, adminPort);
  cleanups.push(async () => daemon.stop('SIGKILL'));
  return daemon;
}

/** Send `payload`, half-close, read to the end; resolves with the client's local port. */
function exchange(port: number, payload: Buffer): Promise<{ localPort: number; received: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let received = 0;
    let localPort = 0;
    socket.on('connect', () => {
      localPort = socket.localPort ?? 0;
      socket.end(payload);
    });
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.on('error', reject);
    socket.on('end', () => socket.end());
    socket.on('close', () => resolve({ localPort, received }));
  });
}

describe('access log', () => {
  it('writes one line per connection with listener, client, backend, bytes each way, duration, connect time and reason', async () => {
    const echo = await startBackend('echo');
    cleanups.push(async () => echo.close());
    const [port, adminPort] = await freePorts(2);
    const file = tempFile('access.log');
    const daemon = await start(
      `${tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: [echo.address], workers: 2 })}access_log: {enabled: true, path: ${file}}\n`,
    );

    const sizes = Array.from({ length: 10 }, (_, i) => 1000 * (i + 1));
    const clients = await Promise.all(sizes.map(async (size) => ({ size, ...(await exchange(port!, Buffer.alloc(size, 7))) })));
    const lines = await waitForLines(file, 10);

    expect(lines).toHaveLength(10);
    for (const client of clients) {
      expect(client.received).toBe(client.size);
      const line = lines.find((l) => l.client === `127.0.0.1:${client.localPort}`);
      expect(line, `a line for client port ${client.localPort}`).toBeDefined();
      expect(line).toMatchObject({
        msg: 'access',
        log: 'access',
        listener: 'web',
        cluster: 'web',
        backend: echo.address,
        attempts: 1,
        bytes_from_client: client.size,
        bytes_to_client: client.size,
        reason: 'client_close',
      });
      expect(line!.connect_ms).toBeGreaterThanOrEqual(0);
      expect(line!.duration_ms).toBeGreaterThanOrEqual(line!.connect_ms!);
    }
    const metrics = await scrape(daemon.adminUrl);
    expect(total(metrics, 'sluice_access_log_records_total')).toBe(10);
    expect(total(metrics, 'sluice_access_log_dropped_total')).toBe(0);
  });

  it('names why each connection ended: client close, backend close, idle timeout, connect failure, no backend, drain', async () => {
    const echo = await startBackend('echo');
    const named = await startBackend('name');
    cleanups.push(async () => echo.close(), async () => named.close());
    const [echoPort, namePort, deadPort, emptyPort, holdPort, adminPort, refused] = await freePorts(7);
    const file = tempFile('access.log');
    const daemon = await start(`workers: 1
admin: {listen: 127.0.0.1:${adminPort}}
shutdown: {drain_timeout: 300ms}
access_log: {enabled: true, path: ${file}}
listeners:
  - {name: echo, listen: 127.0.0.1:${echoPort}, cluster: echo}
  - {name: name, listen: 127.0.0.1:${namePort}, cluster: name}
  - {name: dead, listen: 127.0.0.1:${deadPort}, cluster: dead}
  - {name: empty, listen: 127.0.0.1:${emptyPort}, cluster: empty}
  - {name: hold, listen: 127.0.0.1:${holdPort}, cluster: hold}
clusters:
  - {name: echo, idle_timeout: 300ms, backends: [{address: ${echo.address}}]}
  - {name: name, backends: [{address: ${named.address}}]}
  - {name: dead, backends: [{address: 127.0.0.1:${refused}}]}
  - {name: empty, backends: []}
  - {name: hold, backends: [{address: ${echo.address}}]}
`);

    await roundTrip(echoPort!, Buffer.from('hello'));
    // The backend answers and closes first; the client only closes after it saw the end.
    const reader = await connect(namePort!);
    let answer = '';
    reader.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    await new Promise((resolve) => reader.once('end', resolve));
    reader.end();
    expect(answer).toBe(named.address);
    await roundTrip(deadPort!, Buffer.from('x')).catch(() => undefined);
    await roundTrip(emptyPort!, Buffer.from('x')).catch(() => undefined);
    const idle = await connect(echoPort!);
    const idleClosed = new Promise((resolve) => idle.once('close', resolve));
    idle.on('error', () => undefined);
    await idleClosed;
    expect((await waitForLines(file, 5)).map((l) => l.reason).sort()).toEqual(
      ['backend_close', 'client_close', 'connect_failure', 'idle_timeout', 'no_backend'].sort(),
    );

    // A connection still open at the drain timeout is cut, and its line is written before exit.
    const held = await connect(holdPort!);
    held.on('error', () => undefined);
    held.write('held');
    await new Promise((resolve) => held.once('data', resolve));
    expect(await daemon.stop('SIGTERM')).toBe(0);
    const lines = readLines(file);
    expect(lines).toHaveLength(6);

    const byReason = new Map(lines.map((l) => [l.reason, l]));
    expect(byReason.get('backend_close')).toMatchObject({ listener: 'name', backend: named.address, bytes_to_client: named.address.length });
    expect(byReason.get('connect_failure')).toMatchObject({ listener: 'dead', cluster: 'dead', backend: null, attempts: 1, connect_ms: null });
    expect(byReason.get('no_backend')).toMatchObject({ listener: 'empty', cluster: 'empty', backend: null, attempts: 0 });
    expect(byReason.get('idle_timeout')?.duration_ms).toBeGreaterThanOrEqual(290);
    expect(byReason.get('drain')).toMatchObject({ listener: 'hold', backend: echo.address, bytes_from_client: 4, bytes_to_client: 4 });
  });

  it('logs about the configured fraction of connections when sampling, and counts what it logged', async () => {
    const echo = await startBackend('echo');
    cleanups.push(async () => echo.close());
    const [port, adminPort] = await freePorts(2);
    const file = tempFile('access.log');
    const daemon = await start(
      `${tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: [echo.address], workers: 2 })}access_log: {enabled: true, sampling: 0.5, path: ${file}}\n`,
    );
    for (let i = 0; i < 100; i++) await roundTrip(port!, Buffer.from('x'));
    const metrics = await scrape(daemon.adminUrl);
    const logged = total(metrics, 'sluice_access_log_records_total');
    // Binomial(100, 0.5): 25..75 is five standard deviations either side.
    expect(logged).toBeGreaterThanOrEqual(25);
    expect(logged).toBeLessThanOrEqual(75);
    expect(await waitForLines(file, logged)).toHaveLength(logged);
  });

  it('writes to stdout with the daemon logs when no path is given, and nothing when disabled', async () => {
    const echo = await startBackend('echo');
    cleanups.push(async () => echo.close());
    const [onPort, onAdmin, offPort, offAdmin] = await freePorts(4);
    const on = await start(`${tcpConfig({ listenPort: onPort!, adminPort: onAdmin!, backends: [echo.address], workers: 1 })}access_log: {enabled: true}\n`);
    const off = await start(tcpConfig({ listenPort: offPort!, adminPort: offAdmin!, backends: [echo.address], workers: 1 }));

    await roundTrip(onPort!, Buffer.from('abc'));
    await roundTrip(offPort!, Buffer.from('abc'));
    const line = await on.waitForLog((l) => l.msg === 'access');
    expect(line).toMatchObject({ listener: 'web', bytes_from_client: 3, bytes_to_client: 3, reason: 'client_close' });
    const offMetrics = await scrape(off.adminUrl);
    expect(total(offMetrics, 'sluice_backend_connections_total')).toBe(1);
    expect(total(offMetrics, 'sluice_access_log_records_total')).toBe(0);
    expect(off.logs.filter((l) => l.msg === 'access')).toEqual([]);
  });

  it('refuses to start, with the reason, when the access log file cannot be opened', async () => {
    const [port, adminPort] = await freePorts(2);
    const yaml = `${tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: ['127.0.0.1:1'], workers: 1 })}access_log: {enabled: true, path: /nonexistent-dir/access.log}\n`;
    const child = runCli(['run', '--config', writeConfig(yaml)]);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toContain('access_log.path: cannot open /nonexistent-dir/access.log');
    expect(stderr).toContain('ENOENT');
  });
});
