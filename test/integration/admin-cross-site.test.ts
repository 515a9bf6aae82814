/**
 * The admin API of a real daemon without a token, asked with the headers a browser adds for
 * another site's page (the repro: a cross-site POST /drain stopped the daemon, and a
 * foreign Host read /backends), then by the dashboard's own same-origin requests; and the
 * documented 10,000-block acl, PUT through the real API.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ACL_ENTRIES } from '../../src/shared/config/schema.ts';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { roundTrip } from '../helpers/client.ts';
import { startDaemon, type Daemon } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

let backend: TestBackend;
let daemon: Daemon;
let port: number;
let adminPort: number;

beforeAll(async () => {
  backend = await startBackend('echo');
  [port, adminPort] = (await freePorts(2)) as [number, number];
  const yaml = [
    'workers: 1',
    `admin: {listen: "127.0.0.1:${adminPort}"}`,
    'shutdown: {drain_timeout: 2s}',
    'listeners:',
    `  - {name: web, listen: "127.0.0.1:${port}", cluster: web}`,
    'clusters:',
    `  - {name: web, health_check: {type: none}, backends: [{address: "${backend.address}"}]}`,
    '',
  ].join('\n');
  daemon = await startDaemon(yaml, adminPort);
}, 90_000);

afterAll(async () => {
  await daemon.stop('SIGKILL');
  await backend.close();
});

interface Answer {
  readonly status: number;
  readonly body: { error?: string; message?: string; [key: string]: unknown };
}

/** A request with exactly these headers (fetch would not let a test set Host). */
function ask(method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port: adminPort, method, path, agent: false, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }), ...headers } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          const isJson = response.headers['content-type']?.includes('json') === true;
          resolve({ status: response.statusCode ?? 0, body: isJson ? (JSON.parse(text) as Answer['body']) : { text } });
        });
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

const crossSite = { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors' };

describe('without a token', () => {
  it('refuses cross-site writes and a foreign Host with 403, and the daemon keeps serving', async () => {
    const id = `web:${backend.address}`;
    for (const path of ['/drain', `/backends/${id}/drain`, '/config/reload']) {
      const refused = await ask('POST', path, crossSite);
      expect(refused.status, path).toBe(403);
      expect(refused.body).toEqual({ error: 'CROSS_SITE_REFUSED', message: expect.stringMatching(/^Origin "http:\/\/evil\.example" is not this server/) as unknown });
    }
    // Only Sec-Fetch-Site, as a browser marks a request whose Origin it leaves out.
    expect((await ask('POST', '/drain', { 'sec-fetch-site': 'cross-site' })).body.message).toMatch(/^Sec-Fetch-Site "cross-site"/);

    const rebound = await ask('GET', '/backends', { host: `evil.example:${adminPort}` });
    expect(rebound.status).toBe(403);
    expect(rebound.body.message).toMatch(new RegExp(`^Host "evil\\.example:${adminPort}" does not name this server`));

    // Nothing was drained: still ready, the backend in rotation, traffic proxied.
    expect((await ask('GET', '/readyz')).status).toBe(200);
    const listed = await ask('GET', '/backends');
    expect(listed.body).toEqual([expect.objectContaining({ id, admin: 'none', state: 'healthy' })]);
    expect((await roundTrip(port, Buffer.from('still here'))).toString()).toBe('still here');
    expect(daemon.child.exitCode).toBeNull();
    expect(daemon.logs.filter((l) => /drain/i.test(l.msg))).toEqual([]);
  });

  it('serves the names of this host, /healthz under any Host, and the dashboard’s same-origin requests', async () => {
    const origin = `http://127.0.0.1:${adminPort}`;
    expect((await ask('GET', '/backends', { host: `localhost:${adminPort}` })).status).toBe(200);
    expect((await ask('GET', '/healthz', { host: 'probe.example' })).status).toBe(200);
    expect((await ask('GET', '/', { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' })).status).toBe(200);
    expect((await ask('GET', '/dashboard/state', { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' })).status).toBe(200);
    const id = `web:${backend.address}`;
    const drained = await ask('POST', `/backends/${id}/drain`, { origin, 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' });
    expect(drained.status).toBe(200);
    expect(drained.body).toMatchObject({ id, admin: 'drain' });
    expect((await ask('POST', `/backends/${id}/undrain`, { origin, 'sec-fetch-site': 'same-origin' })).status).toBe(200);
  });
});

describe('the documented acl maximum', () => {
  it('takes 10,000 blocks through PUT /listeners/:name/acl and keeps proxying', async () => {
    const deny = Array.from({ length: MAX_ACL_ENTRIES }, (_, i) => `2001:0db8:0000:0000:0000:0000:${(i >> 8).toString(16).padStart(4, '0')}:${(i & 0xff).toString(16).padStart(4, '0')}/128`);
    const body = JSON.stringify({ deny }, null, 2);
    expect(body.length).toBeGreaterThan(64 * 1024);
    const put = await ask('PUT', '/listeners/web/acl', {}, body);
    expect(put.status).toBe(200);
    expect((put.body['deny'] as string[]).length).toBe(MAX_ACL_ENTRIES);
    const acl = await ask('GET', '/listeners/web/acl');
    expect((acl.body['deny'] as string[]).length).toBe(MAX_ACL_ENTRIES);
    expect((await roundTrip(port, Buffer.from('allowed'))).toString()).toBe('allowed');
  });
});
