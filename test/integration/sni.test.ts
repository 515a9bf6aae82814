/**
 * TLS SNI routing without termination, through the real daemon: real node:tls clients (which
 * verify the backend's certificate against the test CA), real node:tls backends. Sluice only
 * reads the ClientHello; the handshake is between client and backend.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa, type Issued, type TestCa } from '../helpers/certs.ts';
import { startDaemon, type Daemon } from '../helpers/daemon.ts';
import { listenerStats } from '../helpers/edge.ts';
import { clientHello } from '../helpers/tls-hello.ts';
import { freePorts } from '../helpers/ports.ts';

let ca: TestCa;
let certs: Record<'api' | 'web' | 'fallback', Issued>;

beforeAll(() => {
  ca = createTestCa();
  certs = {
    api: ca.issue('api.example.com', ['DNS:api.example.com']),
    web: ca.issue('*.example.com', ['DNS:*.example.com']),
    fallback: ca.issue('127.0.0.1', ['IP:127.0.0.1']),
  };
});
afterAll(() => ca.remove());

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A TLS backend that answers every handshake with its own name and closes. */
async function tlsBackend(name: string, issued: Issued): Promise<{ address: string; tcpConnections: () => number }> {
  let tcp = 0;
  const server = tls.createServer({ key: issued.key, cert: issued.cert }, (socket) => {
    socket.on('error', () => undefined);
    socket.end(name);
  });
  server.on('connection', () => tcp++);
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => new Promise((resolve) => server.close(resolve)));
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, tcpConnections: () => tcp };
}

interface TlsOutcome {
  readonly authorized: boolean;
  readonly reply: string;
  readonly error?: string;
}

/** A verifying TLS client; `servername: undefined` sends no SNI (node sends none for an IP host). */
function tlsRequest(port: number, servername: string | undefined): Promise<TlsOutcome> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.cert, ...(servername === undefined ? {} : { servername }) });
    let reply = '';
    let authorized = false;
    const timer = setTimeout(() => socket.destroy(new Error('no answer within 10 s')), 10_000);
    socket.on('secureConnect', () => (authorized = socket.authorized));
    socket.on('data', (chunk: Buffer) => (reply += chunk.toString()));
    socket.on('error', (error: Error) => {
      clearTimeout(timer);
      resolve({ authorized, reply, error: error.message });
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ authorized, reply });
    });
  });
}

async function setup(): Promise<{ daemon: Daemon; port: number; strictPort: number; backends: Record<string, { tcpConnections: () => number }> }> {
  const api = await tlsBackend('api', certs.api);
  const web = await tlsBackend('web', certs.web);
  const fallback = await tlsBackend('default', certs.fallback);
  const [port, strictPort, adminPort] = await freePorts(3);
  const yaml = `workers: 2
admin:
  listen: 127.0.0.1:${adminPort}
listeners:
  - name: tls
    listen: 127.0.0.1:${port}
    cluster: fallback
    sni_routes:
      - {server_name: api.example.com, cluster: api}
      - {server_name: "*.example.com", cluster: web}
  - name: strict
    listen: 127.0.0.1:${strictPort}
    sni_routes: [{server_name: api.example.com, cluster: api}]
clusters:
  - {name: api, backends: [{address: ${api.address}}]}
  - {name: web, backends: [{address: ${web.address}}]}
  - {name: fallback, backends: [{address: ${fallback.address}}]}
`;
  const daemon = await startDaemon(yaml, adminPort!);
  cleanups.push(async () => daemon.stop('SIGKILL'));
  return { daemon, port: port!, strictPort: strictPort!, backends: { api, web, fallback } };
}

describe('SNI routing without terminating TLS', () => {
  it('sends api.example.com, x.example.com and no SNI to the api, web and default clusters, with verified handshakes end to end', async () => {
    const { port } = await setup();
    expect(await tlsRequest(port, 'api.example.com')).toEqual({ authorized: true, reply: 'api' });
    expect(await tlsRequest(port, 'x.example.com')).toEqual({ authorized: true, reply: 'web' });
    expect(await tlsRequest(port, undefined)).toEqual({ authorized: true, reply: 'default' });
  });

  it('reassembles a ClientHello that arrives in many small TCP segments', async () => {
    const { port } = await setup();
    // A relay that forwards the client's bytes 50 at a time, each in its own segment.
    const relay = net.createServer((client) => {
      const upstream = net.connect({ port, host: '127.0.0.1', noDelay: true });
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      upstream.pipe(client);
      let chain = Promise.resolve();
      client.on('data', (chunk: Buffer) => {
        for (let at = 0; at < chunk.length; at += 50) {
          const piece = chunk.subarray(at, at + 50);
          chain = chain.then(async () => {
            upstream.write(piece);
            // Pacing, not synchronisation: a gap so each piece leaves in its own segment
            // (should two merge, the test proves a little less, it does not fail).
            await new Promise((resolve) => setTimeout(resolve, 5));
          });
        }
      });
      client.on('end', () => void chain.then(() => upstream.end()));
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => new Promise((resolve) => relay.close(resolve)));
    const relayPort = (relay.address() as net.AddressInfo).port;
    expect(await tlsRequest(relayPort, 'api.example.com')).toEqual({ authorized: true, reply: 'api' });
  });

  it('closes a client with no route and no default, and one that does not speak TLS, before any backend; counts both', async () => {
    const { daemon, strictPort, backends } = await setup();
    const before = Object.values(backends).map((b) => b.tcpConnections());
    const noSni = await tlsRequest(strictPort, undefined);
    expect(noSni.authorized).toBe(false);
    expect(noSni.reply).toBe('');
    const unknown = await tlsRequest(strictPort, 'other.example.org');
    expect(unknown.reply).toBe('');
    const plain = await new Promise<string>((resolve) => {
      const socket = net.connect({ port: strictPort, host: '127.0.0.1' });
      socket.on('connect', () => socket.write('GET / HTTP/1.1\r\n\r\n'));
      socket.on('data', () => resolve('data'));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve('closed'));
    });
    expect(plain).toBe('closed');
    expect(Object.values(backends).map((b) => b.tcpConnections())).toEqual(before);
    const stats = await listenerStats(daemon.adminUrl, 'strict');
    expect(stats.refused_total['sni_no_route']).toBe(2);
    expect(stats.refused_total['tls_hello']).toBe(1);
    // The strict listener still routes the name it knows.
    expect(await tlsRequest(strictPort, 'api.example.com')).toEqual({ authorized: true, reply: 'api' });
  });

  it('cuts a client whose ClientHello does not arrive whole within 5 s, and counts it', async () => {
    const { daemon, port, backends } = await setup();
    const hello = clientHello({ serverName: 'api.example.com' });
    const started = Date.now();
    const outcome = await new Promise<string>((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      socket.on('connect', () => socket.write(hello.subarray(0, hello.length - 1)));
      socket.on('data', () => resolve('data'));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve('closed'));
    });
    const elapsed = Date.now() - started;
    expect(outcome).toBe('closed');
    // Not before the 5 s deadline; the refusal reason below says the deadline closed it.
    expect(elapsed).toBeGreaterThanOrEqual(4900);
    expect(Object.values(backends).map((b) => b.tcpConnections())).toEqual([0, 0, 0]);
    expect((await listenerStats(daemon.adminUrl, 'tls')).refused_total['tls_hello_timeout']).toBe(1);
  });
});
