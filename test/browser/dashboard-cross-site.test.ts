/**
 * The cross-site guard with the headers a real browser sends: a page on another site POSTs
 * to an admin API without a token (the repro) and is refused, while the dashboard
 * served from the admin address still reads and drains.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { launchChromium } from '../helpers/browser.ts';
import { roundTrip } from '../helpers/client.ts';
import { startDaemon, tcpConfig } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Another site: `localhost` is a different site from `127.0.0.1`, whatever the ports. */
async function otherSite(): Promise<string> {
  const server = http.createServer((_request, response) => response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>elsewhere</title>'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    async () =>
      new Promise((resolve) => {
        server.close(resolve);
        // Chromium may keep its connection alive after the page is gone.
        server.closeAllConnections();
      }),
  );
  return `http://localhost:${(server.address() as AddressInfo).port}/`;
}

describe('an admin API without a token, in Chromium', () => {
  it("refuses another site's POST /drain and serves the dashboard's own requests", async () => {
    const backend = await startBackend('echo');
    cleanups.push(async () => backend.close());
    const [port, adminPort] = (await freePorts(2)) as [number, number];
    const daemon = await startDaemon(tcpConfig({ listenPort: port, adminPort, backends: [backend.address], workers: 1 }), adminPort);
    cleanups.push(async () => daemon.stop('SIGKILL'));
    const browser = await launchChromium();
    cleanups.push(async () => browser.close());

    const evil = await browser.context.newPage();
    await evil.goto(await otherSite());
    // no-cors: the browser sends it without asking; the page cannot read the answer, but the
    // promise settles only once the server has answered.
    const sent = await evil.evaluate(async (url) => {
      const post = async (path: string): Promise<string> =>
        fetch(`${url}${path}`, { method: 'POST', mode: 'no-cors' }).then(
          (response) => response.type,
          () => 'failed',
        );
      return [await post('/drain'), await post('/config/reload')];
    }, daemon.adminUrl);
    expect(sent).toEqual(['opaque', 'opaque']);
    const ready = await fetch(`${daemon.adminUrl}/readyz`).then((response) => response.status, () => 'admin API gone');
    expect(ready).toBe(200);
    expect((await roundTrip(port, Buffer.from('still serving'))).toString()).toBe('still serving');

    const dashboard = await browser.context.newPage();
    await dashboard.goto(`${daemon.adminUrl}/`);
    await expect.poll(async () => dashboard.locator('#status').textContent(), { timeout: 15_000 }).toBe('live');
    const row = dashboard.locator(`tr[data-backend-id="web:${backend.address}"]`);
    await expect.poll(async () => row.locator('td.state').textContent(), { timeout: 15_000 }).toBe('healthy');
    await row.locator('button.action').click();
    await expect.poll(async () => row.locator('td.state').textContent(), { timeout: 15_000 }).toBe('draining');
  });
});
