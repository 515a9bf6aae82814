/**
 * A reset on one side of a proxied connection reaches the other side as a reset, never as a
 * clean end: a client must be able to tell a truncated reply from a complete one, and a
 * backend an aborted request from a finished one. The access log names the side that reset.
 */
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/client.ts';
import { startDaemon, type Daemon } from '../helpers/daemon.ts';
import { scrape, total } from '../helpers/metrics.ts';
import { freePorts } from '../helpers/ports.ts';
import { completeJsonLines } from '../helpers/json-lines.ts';

const REPLY_BYTES = 1000;
const CONCURRENT_CLIENTS = 100;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Backend {
  readonly address: string;
  readonly port: number;
  /** How each connection ended, as the backend saw it: an error code, or 'end'. */
  readonly endings: string[];
  /** Bytes each connection received before it ended (same order as `endings`). */
  readonly received: number[];
  /** Connections whose first bytes arrived (the client is proxied through). */
  reading: number;
}

/**
 * A backend whose behaviour on each connection is `onConnection`; it records how each
 * connection ended. Closed (every socket destroyed) by the test's cleanup.
 */
async function startBackend(onConnection: (socket: net.Socket) => void): Promise<Backend> {
  const open = new Set<net.Socket>();
  const backend: Backend = { address: '', port: 0, endings: [], received: [], reading: 0 };
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    open.add(socket);
    let received = 0;
    let ended = false;
    const end = (how: string): void => {
      if (ended) return;
      ended = true;
      backend.endings.push(how);
      backend.received.push(received);
    };
    socket.on('data', (chunk: Buffer) => {
      if (received === 0) backend.reading++;
      received += chunk.length;
    });
    socket.on('end', () => end('end'));
    socket.on('error', (error: NodeJS.ErrnoException) => end(error.code ?? 'error'));
    socket.on('close', () => open.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  cleanups.push(async () => {
    for (const socket of open) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return Object.assign(backend, { address: `127.0.0.1:${port}`, port });
}

/** Writes REPLY_BYTES at once, then resets once the kernel has taken them. */
function replyThenReset(socket: net.Socket): void {
  socket.write(Buffer.alloc(REPLY_BYTES, 0x61), () => socket.resetAndDestroy());
}

/**
 * The same, but only once the request arrived: the proxy is then connected both ways, so
 * the reply reaches it as bytes read before the reset. (Replying at once races the proxy's
 * connect: the reset may come before the proxy saw the connection established.)
 */
function replyToRequestThenReset(socket: net.Socket): void {
  socket.once('data', () => replyThenReset(socket));
}

/** How a client connection ended: 'end' (a FIN) or its error code, and the bytes it got first. */
interface ClientOutcome {
  readonly ending: string;
  readonly bytes: number;
}

/** Connect, send a request (and half-close after it), read until the connection ends one way or the other. */
function readToTheEnd(port: number, halfClose = false): Promise<ClientOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    if (halfClose) socket.end('request');
    else socket.write('request');
    let bytes = 0;
    let ending = '';
    socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
    socket.on('end', () => (ending ||= 'end'));
    socket.on('error', (error: NodeJS.ErrnoException) => (ending ||= error.code ?? 'error'));
    socket.on('close', () => resolve({ ending, bytes }));
  });
}

interface AccessLine {
  readonly reason: string;
  readonly bytes_to_client: number;
}

function accessLines(file: string): AccessLine[] {
  return completeJsonLines<AccessLine>(file);
}

async function startSluice(backend: Backend): Promise<{ daemon: Daemon; port: number; accessLog: string }> {
  const [port, adminPort] = await freePorts(2);
  const accessLog = path.join(mkdtempSync(path.join(tmpdir(), 'sluice-resets-')), 'access.log');
  const daemon = await startDaemon(
    `workers: 1
admin:
  listen: 127.0.0.1:${adminPort}
access_log: {enabled: true, sampling: 1, path: ${accessLog}}
listeners:
  - name: web
    listen: 127.0.0.1:${port}
    cluster: web
clusters:
  - name: web
    health_check: {type: none}
    backends:
      - { address: ${backend.address} }
`,
    adminPort!,
  );
  cleanups.push(async () => daemon.stop('SIGKILL'));
  return { daemon, port: port!, accessLog };
}

/** Every proxied connection closed: the daemon holds no connection to the backend. */
async function expectNoConnectionsLeft(daemon: Daemon): Promise<void> {
  const active = async (): Promise<number> => total(await scrape(daemon.adminUrl), 'sluice_backend_active_connections');
  expect(await eventually(active, (n) => n === 0)).toBe(0);
}

describe('a reset from the backend', () => {
  it('reaches a direct client as ECONNRESET (the backend really resets)', async () => {
    const backend = await startBackend(replyThenReset);
    const outcome = await readToTheEnd(backend.port);
    expect(outcome.ending).toBe('ECONNRESET');
  });

  it.each([
    ['a client that keeps its side open', false],
    ['a client that half-closed after its request', true],
  ])('reaches %s as ECONNRESET after the bytes already read, and is logged as backend_reset', async (_client, halfClose) => {
    const backend = await startBackend(replyToRequestThenReset);
    const { daemon, port, accessLog } = await startSluice(backend);

    const outcome = await readToTheEnd(port, halfClose);

    expect(outcome).toEqual({ ending: 'ECONNRESET', bytes: REPLY_BYTES });
    const lines = await eventually(() => Promise.resolve(accessLines(accessLog)), (l) => l.length === 1);
    expect(lines.map((l) => [l.reason, l.bytes_to_client])).toEqual([['backend_reset', REPLY_BYTES]]);
    await expectNoConnectionsLeft(daemon);
  });

  it.each([
    ['after the request', replyToRequestThenReset],
    ['at once (racing the proxy connect)', replyThenReset],
  ])(`reaches every one of ${CONCURRENT_CLIENTS} concurrent clients as ECONNRESET, never as a clean end: reply and reset %s`, async (_when, behaviour) => {
    const backend = await startBackend(behaviour);
    const { daemon, port, accessLog } = await startSluice(backend);

    const outcomes = await Promise.all(Array.from({ length: CONCURRENT_CLIENTS }, () => readToTheEnd(port)));

    const endings = new Map<string, number>();
    for (const { ending } of outcomes) endings.set(ending, (endings.get(ending) ?? 0) + 1);
    expect(Object.fromEntries(endings)).toEqual({ ECONNRESET: CONCURRENT_CLIENTS });
    // A reset discards what was not yet delivered: never more than the backend sent.
    expect(outcomes.every((o) => o.bytes <= REPLY_BYTES)).toBe(true);
    const lines = await eventually(() => Promise.resolve(accessLines(accessLog)), (l) => l.length === CONCURRENT_CLIENTS);
    expect(new Set(lines.map((l) => l.reason))).toEqual(new Set(['backend_reset']));
    await expectNoConnectionsLeft(daemon);
  });
});

describe('a reset from the client', () => {
  it('reaches the backend as ECONNRESET, and is logged as client_reset', async () => {
    const backend = await startBackend(() => undefined);
    const { daemon, port, accessLog } = await startSluice(backend);
    const client = net.connect({ port, host: '127.0.0.1' });
    client.on('error', () => undefined);
    cleanups.push(() => Promise.resolve(client.destroy()));
    client.write('request');
    // Reset only once the backend is reading: the session is connected both ways.
    await eventually(() => Promise.resolve(backend.reading), (n) => n === 1);

    client.resetAndDestroy();

    const endings = await eventually(() => Promise.resolve([...backend.endings]), (e) => e.length === 1);
    expect(endings).toEqual(['ECONNRESET']);
    expect(backend.received).toEqual([7]);
    const lines = await eventually(() => Promise.resolve(accessLines(accessLog)), (l) => l.length === 1);
    expect(lines.map((l) => l.reason)).toEqual(['client_reset']);
    await expectNoConnectionsLeft(daemon);
  });
});
