/**
 * The PROXY protocol through the real daemon: send_proxy tells backends the real client;
 * accept_proxy reads the client a balancer in front names, and bad headers are closed and
 * counted. The backend here reads headers with its own byte-level checks, not Sluice's parser.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { startDaemon, type Daemon } from '../helpers/daemon.ts';
import { exchange, listenerStats, startRecordingBackend, type RecordingBackend } from '../helpers/edge.ts';
import { eventually } from '../helpers/client.ts';
import { freePorts } from '../helpers/ports.ts';
import { idleResources } from '../helpers/resources.ts';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

async function setup(options: {
  listener: string[];
  sendProxy?: 'v1' | 'v2';
  expectBytes: number;
  logLevel?: string;
  accessLog?: string;
  drainTimeout?: string;
}): Promise<{ daemon: Daemon; port: number; backend: RecordingBackend }> {
  const backend = await startRecordingBackend(options.expectBytes);
  cleanups.push(async () => backend.close());
  const [port, adminPort] = await freePorts(2);
  const yaml = `workers: 2
admin:
  listen: 127.0.0.1:${adminPort}
${options.accessLog === undefined ? '' : `access_log: {enabled: true, path: ${options.accessLog}}\n`}${options.drainTimeout === undefined ? '' : `shutdown: {drain_timeout: ${options.drainTimeout}}\n`}listeners:
  - name: edge
    listen: 127.0.0.1:${port}
    cluster: web
${options.listener.map((l) => `    ${l}`).join('\n')}
clusters:
  - name: web
${options.sendProxy === undefined ? '' : `    send_proxy: ${options.sendProxy}\n`}    backends:
      - { address: ${backend.address} }
`;
  const daemon = await startDaemon(yaml, adminPort!, options.logLevel === undefined ? {} : { args: ['--log-level', options.logLevel] });
  cleanups.push(async () => daemon.stop('SIGKILL'));
  return { daemon, port: port!, backend };
}

describe('send_proxy', () => {
  it('v2: the backend reads a valid header with the client real address and port, then the client bytes', async () => {
    const { port, backend } = await setup({ listener: [], sendProxy: 'v2', expectBytes: 28 + 5 });
    const { reply, localPort } = await exchange(port, '127.0.0.6', Buffer.from('hello'));
    expect(reply.toString()).toBe('ok');
    const got = backend.received[0]!;
    expect(got.subarray(0, 12).equals(V2_SIGNATURE)).toBe(true);
    expect(got[12]).toBe(0x21); // version 2, PROXY
    expect(got[13]).toBe(0x11); // AF_INET, STREAM
    expect(got.readUInt16BE(14)).toBe(12);
    expect([...got.subarray(16, 20)]).toEqual([127, 0, 0, 6]);
    expect([...got.subarray(20, 24)]).toEqual([127, 0, 0, 1]);
    expect(got.readUInt16BE(24)).toBe(localPort);
    expect(got.readUInt16BE(26)).toBe(port);
    expect(got.subarray(28).toString()).toBe('hello');
  });

  it('v1: the backend reads the text line, then the client bytes', async () => {
    const { port, backend } = await setup({ listener: [], sendProxy: 'v1', expectBytes: 1000 });
    const { reply, localPort } = await exchange(port, '127.0.0.7', Buffer.from('hello'));
    expect(reply.toString()).toBe('ok');
    expect(backend.received[0]?.toString()).toBe(`PROXY TCP4 127.0.0.7 127.0.0.1 ${localPort} ${port}\r\nhello`);
  });
});

describe('accept_proxy', () => {
  it('routes a client by the backends current when its header completes, not those at accept', async () => {
    const { daemon, port, backend: replaced } = await setup({ listener: ['accept_proxy: true'], expectBytes: 1000 });
    const successor = await startRecordingBackend(1000);
    cleanups.push(async () => successor.close());
    const client = net.connect({ host: '127.0.0.1', port });
    cleanups.push(() => Promise.resolve(client.destroy()));
    await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
    // Accepted and waiting for its header while the only backend is replaced.
    await eventually(async () => listenerStats(daemon.adminUrl, 'edge'), (l) => l.accepted_total === 1);
    const api = async (method: string, url: string, body?: unknown): Promise<number> => {
      const init: RequestInit = body === undefined ? { method } : { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
      const response = await fetch(`${daemon.adminUrl}${url}`, init);
      await response.text();
      return response.status;
    };
    expect(await api('POST', '/backends', { cluster: 'web', address: successor.address })).toBe(201);
    expect(await api('DELETE', `/backends/${encodeURIComponent(`web:${replaced.address}`)}?force=true`)).toBeLessThan(300);

    const reply = new Promise<string>((resolve) => {
      let text = '';
      client.on('data', (chunk: Buffer) => (text += chunk.toString()));
      client.on('end', () => resolve(text));
    });
    client.end(Buffer.concat([Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 5555 443\r\n'), Buffer.from('hello')]));
    expect(await reply).toBe('ok');
    expect(successor.received.map((b) => b.toString())).toEqual(['hello']);
    expect(replaced.accepted).toBe(0);
  });

  it.each([
    ['v1', Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 5555 443\r\n')],
    [
      'v2',
      Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0, 12, 203, 0, 113, 7, 192, 0, 2, 1, 0x15, 0xb3, 0x01, 0xbb])]),
    ],
  ])('behind a %s sender: strips the header, routes, tells the backend and logs the carried client', async (_version, header) => {
    const accessLog = tempFile();
    const { daemon, port, backend } = await setup({ listener: ['accept_proxy: true'], sendProxy: 'v1', expectBytes: 1000, logLevel: 'debug', accessLog });
    const { reply } = await exchange(port, '127.0.0.8', Buffer.concat([header, Buffer.from('payload')]));
    expect(reply.toString()).toBe('ok');
    // The backend hears of the carried client (and destination), never of the header bytes.
    expect(backend.received[0]?.toString()).toBe('PROXY TCP4 203.0.113.7 192.0.2.1 5555 443\r\npayload');
    const line = await daemon.waitForLog((l) => l.msg === 'proxy header');
    expect(line).toMatchObject({ client: { address: '203.0.113.7', port: 5555 }, peer: { address: '127.0.0.8' }, listener: 'edge' });
    // The access log names the carried client too, and counts only its bytes, not the header's.
    expect(await accessLine(accessLog, (l) => l['listener'] === 'edge')).toMatchObject({
      client: '203.0.113.7:5555',
      backend: backend.address,
      reason: 'client_close',
      bytes_from_client: 'payload'.length,
    });
  });

  it('applies the acl and limits to the carried address, not the balancer in front', async () => {
    const accessLog = tempFile();
    const { daemon, port, backend } = await setup({
      listener: ['accept_proxy: true', 'acl: {deny: [203.0.113.0/24]}', 'limits: {per_ip_connections: 1}'],
      expectBytes: 7,
      accessLog,
    });
    const header = (client: string): Buffer => Buffer.from(`PROXY TCP4 ${client} 192.0.2.1 1 2\r\npayload`);
    const denied = await exchange(port, '127.0.0.8', header('203.0.113.9'));
    expect(denied.reply.length).toBe(0);

    // One connection held for 198.51.100.1 (limit 1): a second one for it is refused, one
    // for 198.51.100.2 is served, though all come from the same peer.
    // Half-open, so it stays open after the backend's answer ends the backend's side.
    const holder = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.8', allowHalfOpen: true });
    cleanups.push(() => {
      holder.destroy();
      return Promise.resolve();
    });
    holder.on('error', () => undefined);
    await new Promise<void>((resolve) => {
      holder.on('connect', () => holder.write(header('198.51.100.1')));
      holder.once('data', () => resolve());
    });
    expect((await exchange(port, '127.0.0.8', header('198.51.100.1'))).reply.length).toBe(0);
    expect((await exchange(port, '127.0.0.8', header('198.51.100.2'))).reply.toString()).toBe('ok');

    expect(backend.received).toEqual([Buffer.from('payload'), Buffer.from('payload')]);
    const stats = await listenerStats(daemon.adminUrl, 'edge');
    expect(stats.refused_total['acl']).toBe(1);
    expect(stats.refused_total['per_ip_connections']).toBe(1);
    expect(await accessLine(accessLog, (l) => l['reason'] === 'acl')).toMatchObject({ client: '203.0.113.9:1', backend: null, cluster: null });
    expect(await accessLine(accessLog, (l) => l['reason'] === 'per_ip_connections')).toMatchObject({ client: '198.51.100.1:1', backend: null });
  });

  it('balances by the carried client: consistent_hash sends each carried address to one backend', async () => {
    const names = await Promise.all([startBackend('name'), startBackend('name')]);
    for (const b of names) cleanups.push(async () => b.close());
    const [port, adminPort] = await freePorts(2);
    const daemon = await startDaemon(
      `workers: 2
admin: {listen: 127.0.0.1:${adminPort}}
listeners: [{name: edge, listen: 127.0.0.1:${port}, cluster: web, accept_proxy: true}]
clusters:
  - name: web
    algorithm: consistent_hash
    backends: [{address: ${names[0].address}}, {address: ${names[1].address}}]
`,
      adminPort!,
    );
    cleanups.push(async () => daemon.stop('SIGKILL'));
    const via = async (client: string): Promise<string> =>
      (await exchange(port!, '127.0.0.8', Buffer.from(`PROXY TCP4 ${client} 192.0.2.1 ${1000 + Math.floor(Math.random() * 1000)} 443\r\n`))).reply.toString();
    const seen = new Map<string, Set<string>>();
    for (let i = 0; i < 24; i++) {
      const client = `198.51.100.${i % 8}`;
      const backend = await via(client);
      seen.set(client, (seen.get(client) ?? new Set()).add(backend));
    }
    // Every carried client sticks to one backend (its hash), though all came from one peer...
    for (const backends of seen.values()) expect(backends.size).toBe(1);
    // ...and the 8 clients are not all on one backend, as hashing the peer would put them.
    expect(new Set([...seen.values()].flatMap((b) => [...b])).size).toBe(2);
  });

  it('logs a client cut mid-header by a drain as drain, not as a bad header', async () => {
    const accessLog = tempFile();
    const { daemon, port, backend } = await setup({ listener: ['accept_proxy: true'], expectBytes: 1000, accessLog, drainTimeout: '500ms' });
    const client = net.connect({ host: '127.0.0.1', port });
    client.on('error', () => undefined);
    cleanups.push(() => Promise.resolve(client.destroy()));
    await new Promise<void>((resolve) => client.once('connect', resolve));
    // Half a header, then nothing: the 3 s header deadline is later than the drain's.
    client.write('PROXY TCP4 203.0.113.7');
    await eventually(async () => listenerStats(daemon.adminUrl, 'edge'), (l) => l.accepted_total === 1);
    expect(await daemon.stop('SIGTERM')).toBe(0);
    expect(await accessLine(accessLog, (l) => l['listener'] === 'edge')).toMatchObject({ reason: 'drain', backend: null });
    expect(backend.accepted).toBe(0);
  });

  it('closes and counts garbage, a truncated header and a slow header; no backend sees any', async () => {
    const echo = await startBackend('echo');
    cleanups.push(async () => echo.close());
    const { daemon, port, backend } = await setup({ listener: ['accept_proxy: true'], expectBytes: 1 });

    const garbage = await exchange(port, '127.0.0.9', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(garbage.reply.length).toBe(0);

    // A truncated header, then the client ends its side.
    const truncated = await new Promise<string>((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.9' });
      socket.on('connect', () => socket.end('PROXY TCP4 203.0.113.7 19'));
      socket.on('error', () => undefined);
      socket.on('data', () => resolve('data'));
      socket.on('close', () => resolve('closed'));
    });
    expect(truncated).toBe('closed');

    // A valid header sent one byte per second: cut at the header deadline (3 s).
    const started = Date.now();
    const slow = await new Promise<{ outcome: string; sent: number }>((resolve) => {
      const text = Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 5555 443\r\n');
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.9' });
      let sent = 0;
      let timer: NodeJS.Timeout | undefined;
      const tick = (): void => {
        if (sent < text.length && !socket.destroyed) socket.write(text.subarray(sent, ++sent));
        timer = setTimeout(tick, 1000);
      };
      socket.on('connect', tick);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve({ outcome: 'closed', sent });
      });
    });
    const elapsed = Date.now() - started;
    expect(slow.outcome).toBe('closed');
    // Not before the deadline, and with the header still incomplete: the deadline (counted
    // as proxy_header_timeout below) closed it, whatever the machine's load.
    expect(elapsed).toBeGreaterThanOrEqual(2900);
    expect(slow.sent).toBeLessThan(43);

    expect(backend.accepted).toBe(0);
    const stats = await listenerStats(daemon.adminUrl, 'edge');
    expect(stats.refused_total['proxy_header']).toBe(2);
    expect(stats.refused_total['proxy_header_timeout']).toBe(1);
    expect(stats.accepted_total).toBe(3);

    // Every header timer was cleared and every socket closed: only the listening socket is left.
    const resources = await idleResources(daemon.adminUrl);
    for (const worker of resources.workers) {
      expect(worker.connections).toBe(0);
      expect(worker.resources['TCPSocketWrap'] ?? 0).toBe(0);
      expect(worker.resources['Timeout'] ?? 0).toBe(0);
    }
  });
});

function tempFile(): string {
  return path.join(mkdtempSync(path.join(tmpdir(), 'sluice-edge-')), 'access.log');
}

/** The first access log line `match` accepts, once it has been written (10 s hang bound). */
async function accessLine(file: string, match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown> | undefined> {
  const find = async (): Promise<Record<string, unknown> | undefined> =>
    Promise.resolve(
      (existsSync(file) ? readFileSync(file, 'utf8') : '')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find(match),
    );
  return eventually(find, (found) => found !== undefined, 10_000, 100);
}
