/**
 * What the admin API says about requests it refuses before a route runs: prototype keys in
 * valid JSON, one value failing two checks, headers over the limit (through a real port:
 * inject() skips Node's HTTP parser), and body limits, the acl route's computed from the
 * documented 10,000-block maximum.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAdminApp, type AdminApp } from '../../../src/controlplane/admin/app.ts';
import { ACL_BODY_LIMIT_BYTES, BODY_LIMIT_BYTES } from '../../../src/controlplane/admin/schemas.ts';
import { clientErrorResponse } from '../../../src/controlplane/admin/errors.ts';
import { forbiddenKey } from '../../../src/controlplane/admin/json-body.ts';
import { MAX_ACL_ENTRIES, type AclConfig } from '../../../src/shared/config/schema.ts';
import { CounterTables, createCounterBuffer } from '../../../src/shared/counters.ts';
import type { BackendCommand } from '../../../src/shared/messages.ts';
import { testAdminDeps } from '../../helpers/admin.ts';
import { testBackend, testCluster, testListener, testSnapshot } from '../../helpers/snapshot.ts';

const apps: AdminApp[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const app of apps.splice(0)) await app.close();
});

const b1 = testBackend('127.0.0.1:9001');

function build() {
  const dims = { workers: 1, backendSlots: 4, listenerSlots: 1 };
  const commands: BackendCommand[] = [];
  const acls: AclConfig[] = [];
  const app = buildAdminApp(
    testAdminDeps(testSnapshot({ clusters: [testCluster({ backends: [b1] })], listeners: [testListener({ name: 'edge' })] }), new CounterTables(createCounterBuffer(dims), dims), {
      commands: {
        run: (command) => {
          commands.push(command);
          return Promise.resolve({ ok: true, version: 2, cluster: 'web', backend: b1 });
        },
      },
      listenerAcls: {
        set: (_listener, acl) => {
          acls.push(acl);
          return Promise.resolve({ ok: true, version: 2, acl });
        },
      },
    }),
  );
  apps.push(app);
  return { app, commands, acls };
}

const json = { 'content-type': 'application/json' };

describe('a refused body says what is refused', () => {
  it.each<[string, string, string, string]>([
    ['__proto__ at the top', '/backends/web:127.0.0.1:9001', '{"__proto__": {"admin": true}, "weight": 2}', 'body: the key "__proto__" is not allowed'],
    ['constructor at the top', '/backends/web:127.0.0.1:9001', '{"constructor": {"prototype": {}}, "weight": 2}', 'body: the key "constructor" is not allowed'],
    ['__proto__ in a list', '/listeners/edge/routes', '{"routes": [{"cluster": "web", "weight": 1, "__proto__": null}]}', 'routes.0: the key "__proto__" is not allowed'],
  ])('%s', async (_name, url, payload, message) => {
    const { app, commands } = build();
    const response = await app.inject({ method: 'PATCH', url, payload, headers: json });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({ error: 'BAD_REQUEST', message });
    expect(commands).toEqual([]);
  });

  it('still calls broken JSON and an empty body what they are', async () => {
    const { app } = build();
    const broken = await app.inject({ method: 'PATCH', url: '/backends/web:127.0.0.1:9001', payload: '{"weight": ', headers: json });
    expect(broken.json()).toEqual({ error: 'BAD_JSON', message: 'body: not valid JSON' });
    const empty = await app.inject({ method: 'PATCH', url: '/backends/web:127.0.0.1:9001', payload: '', headers: json });
    expect(empty.json()).toEqual({ error: 'BAD_JSON', message: 'body: content-type is application/json but the body is empty' });
  });

  it('finds a forbidden key however deep, without recursion', () => {
    const deep = JSON.parse(`${'['.repeat(100_000)}{"__proto__": 1}${']'.repeat(100_000)}`) as unknown;
    expect(forbiddenKey(deep)?.key).toBe('__proto__');
    expect(forbiddenKey(deep)?.path).toHaveLength(100_000);
    expect(forbiddenKey({ a: [{ b: 'constructor' }], prototype: 1 })).toBeUndefined();
  });

  it('cuts the path of a key nested deep in a body', async () => {
    const { app } = build();
    const payload = `{"routes": ${'['.repeat(20_000)}{"__proto__": 1}${']'.repeat(20_000)}}`;
    const response = await app.inject({ method: 'PATCH', url: '/listeners/edge/routes', payload, headers: json });
    expect(response.json()).toEqual({ error: 'BAD_REQUEST', message: 'routes.0.0.0.0.0.0.0.… (20001 levels deep): the key "__proto__" is not allowed' });
  });

  it('says once that 1e308 is not a weight (it fails two checks with one message)', async () => {
    const { app } = build();
    const response = await app.inject({ method: 'PATCH', url: '/backends/web:127.0.0.1:9001', payload: '{"weight": 1e308}', headers: json });
    expect(response.json()).toEqual({ error: 'BAD_REQUEST', message: 'weight: expected an integer from 0 to 10000' });
  });
});

/** Send raw bytes to the app's port and read everything until the server closes. */
async function exchange(app: AdminApp, bytes: string): Promise<{ status: number; body: unknown }> {
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening');
  const socket = net.connect(address.port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => undefined);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.write(bytes);
  await new Promise((resolve) => socket.once('close', resolve));
  const text = Buffer.concat(chunks).toString();
  const [head = '', body = ''] = text.split('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), body: JSON.parse(body) as unknown };
}

describe('errors before Fastify sees the request', () => {
  it.each<[string | undefined, number, string, string]>([
    ['HPE_HEADER_OVERFLOW', 431, 'HEADERS_TOO_LARGE', 'request headers: larger than 16384 bytes'],
    ['ERR_HTTP_REQUEST_TIMEOUT', 408, 'REQUEST_TIMEOUT', 'request: not received in full within 10000 ms'],
    ['HPE_INVALID_METHOD', 400, 'BAD_REQUEST', 'request: not valid HTTP/1.1'],
    [undefined, 400, 'BAD_REQUEST', 'request: not valid HTTP/1.1'],
  ])('%s answers %d %s', (code, status, error, message) => {
    expect(clientErrorResponse(code, 10_000)).toEqual({ status, body: { error, message } });
  });

  it('answers headers over 16 KiB with 431 and the {error, message} body', async () => {
    const { app } = build();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const response = await exchange(app, `GET /backends HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`);
    expect(response).toEqual({ status: 431, body: { error: 'HEADERS_TOO_LARGE', message: 'request headers: larger than 16384 bytes' } });
  });

  it('answers a request that is not HTTP with 400 and the {error, message} body', async () => {
    const { app } = build();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const response = await exchange(app, 'HELLO\r\n\r\n');
    expect(response).toEqual({ status: 400, body: { error: 'BAD_REQUEST', message: 'request: not valid HTTP/1.1' } });
  });
});

describe('body limits', () => {
  /** The longest spelling the limit allows for: 49 characters, all distinct blocks. */
  function longestBlocks(n: number): string[] {
    return Array.from({ length: n }, (_, i) => `0000:0000:0000:0000:0000:ffff:100.100.${100 + Math.floor(i / 100)}.${100 + (i % 100)}/128`);
  }

  it('takes the documented maximum acl, 10,000 blocks at their longest, pretty-printed', async () => {
    const { app, acls } = build();
    const payload = JSON.stringify({ deny: longestBlocks(MAX_ACL_ENTRIES) }, null, 2);
    expect(payload.length).toBeGreaterThan(BODY_LIMIT_BYTES);
    const response = await app.inject({ method: 'PUT', url: '/listeners/edge/acl', payload, headers: json });
    expect(response.statusCode).toBe(200);
    expect(acls[0]?.deny).toHaveLength(MAX_ACL_ENTRIES);
    expect(acls[0]?.deny[0]).toBe('100.100.100.100/32');
  });

  it('refuses an acl body over its limit with 413 naming that limit, and keeps 64 KiB for the other routes', async () => {
    const { app, acls, commands } = build();
    const tooLarge = await app.inject({ method: 'PUT', url: '/listeners/edge/acl', payload: `{"deny": [], "x": "${'a'.repeat(ACL_BODY_LIMIT_BYTES)}"}`, headers: json });
    expect(tooLarge.statusCode).toBe(413);
    expect(tooLarge.json()).toEqual({ error: 'BODY_TOO_LARGE', message: `body: larger than ${ACL_BODY_LIMIT_BYTES} bytes` });
    expect(ACL_BODY_LIMIT_BYTES).toBe(705_536);
    const other = await app.inject({ method: 'POST', url: '/backends', payload: `{"cluster": "web", "x": "${'a'.repeat(BODY_LIMIT_BYTES)}"}`, headers: json });
    expect(other.json()).toEqual({ error: 'BODY_TOO_LARGE', message: 'body: larger than 65536 bytes' });
    expect(acls).toEqual([]);
    expect(commands).toEqual([]);
  });
});
