/**
 * The dashboard in a real browser: load the page from the running daemon, watch it follow
 * live traffic, drain a backend with its button, and keep a screenshot in test-output/.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { launchChromium } from '../helpers/browser.ts';
import { clientLoop, openEcho, roundTrip } from '../helpers/client.ts';
import { startDaemon, tcpConfig, type Daemon } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const TOKEN = 'dashboard-test-token';

/** A daemon whose admin API needs TOKEN, with two echo backends. */
async function setup(): Promise<{ daemon: Daemon; port: number; backends: TestBackend[] }> {
  const backends = await Promise.all([startBackend('echo'), startBackend('echo')]);
  for (const b of backends) cleanups.push(async () => b.close());
  const [port, adminPort] = await freePorts(2);
  const yaml = tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: backends.map((b) => b.address), workers: 2 }).replace(
    `listen: 127.0.0.1:${adminPort}`,
    `listen: 127.0.0.1:${adminPort}\n  token_env: SLUICE_DASHBOARD_TOKEN`,
  );
  const daemon = await startDaemon(yaml, adminPort!, { env: { SLUICE_DASHBOARD_TOKEN: TOKEN } });
  cleanups.push(async () => daemon.stop('SIGKILL'));
  return { daemon, port: port!, backends };
}

describe('dashboard in Chromium', () => {
  it('asks for the admin token, then shows listeners and backends live, and drains a backend from its button', async () => {
    const { daemon, port, backends } = await setup();
    const browser = await launchChromium();
    cleanups.push(async () => browser.close());
    const page = await browser.context.newPage();
    const consoleErrors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });

    await page.goto(`${daemon.adminUrl}/`);
    // The page itself needs no token; its data does.
    await expect.poll(async () => page.locator('#status').textContent(), { timeout: 15_000 }).toBe('admin token required');
    await page.locator('#token').fill(TOKEN);
    await page.locator('#token-form button').click();
    const first = page.locator(`tr[data-backend-id="web:${backends[0]!.address}"]`);
    const second = page.locator(`tr[data-backend-id="web:${backends[1]!.address}"]`);
    await expect.poll(async () => first.locator('td.state').textContent(), { timeout: 15_000 }).toBe('healthy');
    await expect.poll(async () => second.locator('td.state').textContent()).toBe('healthy');
    expect(await page.locator('#status').textContent()).toBe('live');
    // The 401 of the polls before the token was given is expected; nothing after it is.
    consoleErrors.length = 0;

    // Live traffic: two held connections and some bytes (each worker rotates on its own, so
    // which backend holds which connection is up to the kernel's choice of worker).
    for (let i = 0; i < 4; i++) await roundTrip(port, Buffer.alloc(50_000, 1));
    const held = await Promise.all([openEcho(port), openEcho(port)]);
    for (const c of held) {
      cleanups.push(() => Promise.resolve(c.socket.destroy()));
      await c.exchange('ping');
    }
    const active = async (): Promise<number> =>
      Number(await first.locator('td').nth(4).textContent()) + Number(await second.locator('td').nth(4).textContent());
    await expect.poll(active, { timeout: 15_000 }).toBe(2);
    await expect.poll(async () => page.locator('#listeners tr[data-listener="web"] td').nth(3).textContent()).toBe('6');

    await first.locator('button.action').click();
    await expect.poll(async () => first.locator('td.state').textContent(), { timeout: 15_000 }).toBe('draining');
    expect(await first.locator('button.action').textContent()).toBe('Undrain');
    expect(await second.locator('td.state').textContent()).toBe('healthy');
    // The click is an operator change and a state transition, and both are logged as events.
    const id = `web:${backends[0]!.address}`;
    const change = await daemon.waitForLog((l) => l.msg === 'operator change applied');
    expect(change['command']).toEqual({ op: 'drain', id });
    await daemon.waitForLog((l) => l.msg === 'backend health changed' && l['backend'] === id && l['from'] === 'healthy' && l['to'] === 'draining');

    // New traffic goes to the healthy backend only, and the page shows it flowing.
    const connectionsOf = async (row: typeof first): Promise<number> => Number((await row.locator('td').nth(8).textContent())?.replace(/,/g, ''));
    const drainedBefore = await connectionsOf(first);
    const healthyBefore = await connectionsOf(second);
    const traffic = clientLoop(port, 4);
    cleanups.push(async () => traffic.stop());
    await expect.poll(async () => second.locator('td').nth(5).textContent(), { timeout: 15_000 }).not.toBe('0 B/s');
    await expect.poll(async () => connectionsOf(second)).toBeGreaterThan(healthyBefore);
    expect(await connectionsOf(first)).toBe(drainedBefore);

    // The backend's history shows the operator's drain as a timeline, newest first.
    await first.locator('button.history').click();
    await expect.poll(async () => page.locator('#history .backend').textContent()).toBe(id);
    expect(await page.locator('#history').isVisible()).toBe(true);
    const newest = page.locator('#history ol li').first();
    expect(await newest.locator('strong').textContent()).toBe('healthy → draining (operator: drain)');
    expect(await page.locator('#history ol li').last().locator('strong').textContent()).toBe('new → healthy');

    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT, 'dashboard.png'), fullPage: true });
    const { failed } = await traffic.stop();
    expect(failed).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });
});
