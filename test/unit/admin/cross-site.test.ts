/**
 * The cross-site decision as a table (cross-site.ts), then the guard in the app through
 * inject(): which routes skip the Host check, and what a token changes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buildAdminApp, type AdminApp } from '../../../src/controlplane/admin/app.ts';
import { crossSiteProblem, parseHostHeader, type CrossSiteRequest } from '../../../src/controlplane/admin/cross-site.ts';
import { isLoopbackHost } from '../../../src/shared/address.ts';
import { CounterTables, createCounterBuffer } from '../../../src/shared/counters.ts';
import { testAdminDeps } from '../../helpers/admin.ts';
import { testSnapshot } from '../../helpers/snapshot.ts';

const ADMIN = '127.0.0.1:9090';
const local = new Set(['192.0.2.2', 'lb-1', 'admin.internal']);
const noToken = { checkHost: true, localHosts: local };
const withToken = { checkHost: false, localHosts: local };

function req(overrides: Partial<CrossSiteRequest>): CrossSiteRequest {
  return { method: 'POST', host: ADMIN, origin: undefined, fetchSite: undefined, fetchMode: undefined, fetchDest: undefined, ...overrides };
}

const navigation = { fetchMode: 'navigate', fetchDest: 'document' } as const;

describe('crossSiteProblem', () => {
  it.each<[string, Partial<CrossSiteRequest>, typeof noToken, 'Host' | 'Origin' | 'Sec-Fetch-Site' | undefined]>([
    // Tools: curl, sluice ctl, Prometheus, the handover request.
    ['curl to the admin address', {}, noToken, undefined],
    ['no Host header (HTTP/1.0, not a browser)', { host: undefined }, noToken, undefined],
    ['Host localhost with a port', { host: 'localhost:9090' }, noToken, undefined],
    ['Host localhost. (trailing dot)', { host: 'LocalHost.:9090' }, noToken, undefined],
    ['Host elsewhere in 127/8', { host: '127.3.4.5:9090' }, noToken, undefined],
    ['Host [::1]', { host: '[::1]:9090' }, noToken, undefined],
    ['Host [::ffff:127.0.0.1]', { host: '[::ffff:127.0.0.1]:9090' }, noToken, undefined],
    ['Host an address of this host (a pod IP)', { host: '192.0.2.2:9090' }, noToken, undefined],
    ["Host this host's name", { host: 'LB-1:9090' }, noToken, undefined],
    ['Host the name admin.listen gives', { host: 'admin.internal:9090' }, noToken, undefined],
    // DNS rebinding: only the Host header tells.
    ['Host a foreign name (DNS rebinding)', { host: 'evil.example:9090', method: 'GET' }, noToken, 'Host'],
    ['Host a foreign address', { host: '203.0.113.9:9090', method: 'GET' }, noToken, 'Host'],
    ['Host localhost.evil.example', { host: 'localhost.evil.example:9090' }, noToken, 'Host'],
    ['Host 127.0.0.1.evil.example', { host: '127.0.0.1.evil.example' }, noToken, 'Host'],
    ['Host not a host at all', { host: 'a b' }, noToken, 'Host'],
    ['Host with a bad port', { host: '127.0.0.1:90x' }, noToken, 'Host'],
    ['a token: a foreign Host is fine (the token protects)', { host: 'lb.example.com', method: 'GET' }, withToken, undefined],
    // The dashboard itself: same-origin fetches.
    ['the dashboard polling (same-origin GET)', { method: 'GET', fetchSite: 'same-origin', fetchMode: 'cors' }, noToken, undefined],
    ['the dashboard draining a backend', { origin: `http://${ADMIN}`, fetchSite: 'same-origin', fetchMode: 'cors' }, noToken, undefined],
    ['the dashboard opened as localhost', { host: 'localhost:9090', origin: 'http://localhost:9090', fetchSite: 'same-origin' }, noToken, undefined],
    ['the dashboard opened as [::1]', { host: '[::1]:9090', origin: 'http://[::1]:9090', fetchSite: 'same-origin' }, noToken, undefined],
    ['typed into the address bar', { method: 'GET', fetchSite: 'none', ...navigation }, noToken, undefined],
    ['behind a TLS proxy that keeps the Host, with a token', { host: 'lb.example.com', origin: 'https://lb.example.com', fetchSite: 'same-origin' }, withToken, undefined],
    ['an explicit default port in Host', { host: 'lb.example.com:443', origin: 'https://lb.example.com' }, withToken, undefined],
    // Cross-site requests.
    ['a page elsewhere POSTs (the repro)', { origin: 'http://evil.example', fetchSite: 'cross-site', fetchMode: 'no-cors' }, noToken, 'Origin'],
    ['the same with a token', { origin: 'http://evil.example', fetchSite: 'cross-site' }, withToken, 'Origin'],
    ['a rebinding page with a token (Origin and Host agree: the token decides)', { host: 'evil.example:9090', origin: 'http://evil.example:9090' }, withToken, undefined],
    ['another port of this host (same-site)', { origin: 'http://127.0.0.1:3000', fetchSite: 'same-site' }, noToken, 'Origin'],
    ['another loopback name, same port', { origin: 'http://localhost:9090', fetchSite: 'cross-site' }, noToken, 'Origin'],
    // The scheme is not compared: behind a TLS proxy the server cannot know its own, and one host:port is one server.
    ['an https origin naming this host:port', { origin: `https://${ADMIN}` }, noToken, undefined],
    ['Origin null (sandboxed frame, file:)', { origin: 'null' }, noToken, 'Origin'],
    ['Origin not http(s)', { origin: 'chrome-extension://abc' }, noToken, 'Origin'],
    ['Origin garbage', { origin: '::::' }, noToken, 'Origin'],
    ['Origin but no Host', { host: undefined, origin: `http://${ADMIN}` }, noToken, 'Origin'],
    ['Sec-Fetch-Site cross-site without Origin', { method: 'GET', fetchSite: 'cross-site', fetchMode: 'no-cors', fetchDest: 'image' }, noToken, 'Sec-Fetch-Site'],
    ['Sec-Fetch-Site same-site without Origin', { method: 'GET', fetchSite: 'same-site', fetchMode: 'no-cors' }, noToken, 'Sec-Fetch-Site'],
    ['Sec-Fetch-Site in capitals', { method: 'GET', fetchSite: 'Cross-Site' }, noToken, 'Sec-Fetch-Site'],
    ['a cross-site form POST (navigation, but not safe)', { fetchSite: 'cross-site', ...navigation }, noToken, 'Sec-Fetch-Site'],
    ['a cross-site iframe GET', { method: 'GET', fetchSite: 'cross-site', fetchMode: 'navigate', fetchDest: 'iframe' }, noToken, 'Sec-Fetch-Site'],
    // A link followed from a wiki to the dashboard: a top-level GET shows the page to the operator only.
    ['a link followed from another site', { method: 'GET', fetchSite: 'cross-site', ...navigation }, noToken, undefined],
    ['a link followed from another port of this host', { method: 'HEAD', fetchSite: 'same-site', ...navigation }, noToken, undefined],
    ['but a link on a rebinding name is still refused', { method: 'GET', host: 'evil.example:9090', fetchSite: 'same-origin', ...navigation }, noToken, 'Host'],
  ])('%s', (_name, overrides, policy, refusedFor) => {
    const problem = crossSiteProblem(req(overrides), policy);
    expect(problem?.header).toBe(refusedFor);
  });

  it('names the header and its value in the message', () => {
    expect(crossSiteProblem(req({ host: 'evil.example:9090' }), noToken)?.message).toMatch(/^Host "evil\.example:9090" does not name this server: without an admin token/);
    expect(crossSiteProblem(req({ origin: 'http://evil.example' }), noToken)?.message).toBe(
      'Origin "http://evil.example" is not this server (127.0.0.1:9090): the admin API refuses requests a browser sends for another site',
    );
    expect(crossSiteProblem(req({ fetchSite: 'cross-site' }), noToken)?.message).toBe(
      'Sec-Fetch-Site "cross-site": the admin API refuses requests a browser sends for another site\'s page',
    );
  });
});

describe('parseHostHeader and isLoopbackHost', () => {
  it.each<[string, { host: string; port: string | undefined } | undefined]>([
    ['127.0.0.1:9090', { host: '127.0.0.1', port: '9090' }],
    ['Example.COM', { host: 'example.com', port: undefined }],
    ['[0:0::1]:80', { host: '::1', port: '80' }],
    ['[::1]', { host: '::1', port: undefined }],
    ['[::1]x', undefined],
    ['[nope]:80', undefined],
    ['host:', undefined],
    ['host:123456', undefined],
    ['', undefined],
    ['a/b', undefined],
  ])('%j', (text, expected) => {
    expect(parseHostHeader(text)).toEqual(expected);
  });

  it.each<[string, boolean]>([
    ['localhost', true],
    ['127.0.0.1', true],
    ['127.255.255.254', true],
    ['::1', true],
    ['::ffff:7f00:1', true],
    ['::ffff:ff:1', false],
    ['128.0.0.1', false],
    ['127.example', false],
    ['0.0.0.0', false],
  ])('%s loopback: %s', (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });
});

describe('the guard in the app', () => {
  const apps: AdminApp[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });

  function build(token?: string): { app: AdminApp; drains: number[] } {
    const dims = { workers: 1, backendSlots: 1, listenerSlots: 1 };
    const drains: number[] = [];
    const app = buildAdminApp(
      testAdminDeps(testSnapshot({ version: 1, clusters: [] }), new CounterTables(createCounterBuffer(dims), dims), {
        token,
        listen: 'admin.internal:9090',
        lifecycle: { drain: () => drains.push(1), reload: () => Promise.resolve({ ok: false, error: 'CONFIG_INVALID', errors: ['no'] }) },
      }),
    );
    apps.push(app);
    return { app, drains };
  }

  it('refuses a foreign Host with 403 CROSS_SITE_REFUSED, but not on /healthz and /readyz, nor for admin.listen', async () => {
    const { app } = build();
    const foreign = { host: 'evil.example:9090' };
    const refused = await app.inject({ method: 'GET', url: '/backends', headers: foreign });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toEqual({ error: 'CROSS_SITE_REFUSED', message: expect.stringMatching(/^Host "evil\.example:9090"/) as unknown });
    expect((await app.inject({ method: 'GET', url: '/', headers: foreign })).statusCode).toBe(403);
    expect((await app.inject({ method: 'GET', url: '/nope', headers: foreign })).statusCode).toBe(403);
    expect((await app.inject({ method: 'GET', url: '/healthz', headers: foreign })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/readyz?x=1', headers: foreign })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/backends', headers: { host: 'admin.internal:9090' } })).statusCode).toBe(200);
  });

  it('with a token: a foreign Host is left to the token, a cross-site Origin is refused before it', async () => {
    const { app, drains } = build('secret');
    const auth = { authorization: 'Bearer secret' };
    expect((await app.inject({ method: 'GET', url: '/backends', headers: { host: 'lb.example.com', ...auth } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/backends', headers: { host: 'lb.example.com' } })).statusCode).toBe(401);
    const crossSite = await app.inject({ method: 'POST', url: '/drain', headers: { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site', ...auth } });
    expect(crossSite.statusCode).toBe(403);
    expect(crossSite.json<{ error: string }>().error).toBe('CROSS_SITE_REFUSED');
    expect(drains).toEqual([]);
  });
});
