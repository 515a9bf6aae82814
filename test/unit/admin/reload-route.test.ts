/**
 * POST /config/reload through inject() with a fake lifecycle, and `sluice ctl reload`'s
 * arguments and output: the dry run reaches the supervisor as such, refusals map to their
 * statuses, a partial reload is not a plain success.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buildAdminApp, type AdminApp } from '../../../src/controlplane/admin/app.ts';
import type { ReloadResult } from '../../../src/controlplane/admin/lifecycle-routes.ts';
import { formatReload, parseCtlArgs } from '../../../src/ctl.ts';
import { CounterTables, createCounterBuffer } from '../../../src/shared/counters.ts';
import { testAdminDeps } from '../../helpers/admin.ts';
import { testSnapshot } from '../../helpers/snapshot.ts';

const apps: AdminApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

const plan = {
  add: [{ cluster: 'web', address: '127.0.0.1:9002', weight: 1, drained: false }],
  restore: [],
  remove: ['web:127.0.0.1:9001'],
  drain: [],
  reweight: [],
  keep: ['web:127.0.0.1:9003'],
};
const changes = { listenersAdded: [], listenersRemoved: [], listenersChanged: [], clustersAdded: [], clustersRemoved: [] };
const slots = { limit: 'backend_slots', code: 'SLUICE_CAPACITY_EXCEEDED', needed: 18_001, bound: 16_384, message: 'backend_slots: needs 18001 …' } as const;

function build(answer: ReloadResult): { app: AdminApp; asked: boolean[] } {
  const asked: boolean[] = [];
  const dims = { workers: 1, backendSlots: 4, listenerSlots: 1 };
  const app = buildAdminApp(
    testAdminDeps(testSnapshot(), new CounterTables(createCounterBuffer(dims), dims), {
      lifecycle: {
        drain: () => undefined,
        reload: (options) => {
          asked.push(options.dryRun);
          return Promise.resolve(answer);
        },
      },
    }),
  );
  apps.push(app);
  return { app, asked };
}

const applied = (failures: string[], dryRun = false): ReloadResult => ({ ok: true, dryRun, snapshotVersion: 7, changes, plan, ignored: [], failures });

describe('POST /config/reload', () => {
  it.each<[string, string, ReloadResult, number, Record<string, unknown>]>([
    ['a reload', '', applied([]), 200, { status: 'reloaded', snapshot_version: 7, backends: plan, limits: [] }],
    ['a reload with a listener that failed', '', applied(['listener x: 127.0.0.1:1 is already in use (EADDRINUSE)']), 200, { status: 'partial' }],
    ['a dry run', '?dry_run=true', applied([], true), 200, { status: 'dry_run', backends: plan }],
    ['a dry run over a limit', '?dry_run=true', { ok: false, error: 'NO_CAPACITY', errors: [slots.message], limits: [slots], plan, dryRun: true }, 200, { status: 'dry_run', refused: true, limits: [slots] }],
    ['a reload over a limit', '', { ok: false, error: 'NO_CAPACITY', errors: [slots.message], limits: [slots], plan }, 507, { error: 'NO_CAPACITY', message: slots.message, limits: [slots] }],
    ['a bad file', '', { ok: false, error: 'CONFIG_INVALID', errors: ['config.yaml:1:1 x: bad'] }, 400, { error: 'CONFIG_INVALID', message: 'config.yaml:1:1 x: bad' }],
  ])('%s', async (_name, query, answer, status, body) => {
    const { app, asked } = build(answer);
    const response = await app.inject({ method: 'POST', url: `/config/reload${query}` });
    expect(response.statusCode).toBe(status);
    expect(response.json()).toMatchObject(body);
    expect(asked).toEqual([query !== '']);
  });

  it('refuses an unknown query parameter without reloading', async () => {
    const { app, asked } = build(applied([]));
    const response = await app.inject({ method: 'POST', url: '/config/reload?dryrun=1' });
    expect([response.statusCode, response.json<{ error: string }>().error, asked]).toEqual([400, 'BAD_REQUEST', []]);
  });
});

describe('sluice ctl reload', () => {
  it('asks for a dry run with --dry-run', () => {
    expect(parseCtlArgs(['reload'], {}).request).toEqual({ method: 'POST', path: '/config/reload', show: 'reload' });
    expect(parseCtlArgs(['reload', '--dry-run'], {}).request).toEqual({ method: 'POST', path: '/config/reload?dry_run=true', show: 'reload' });
  });

  it('prints the plan, and exits 1 when a limit would be hit', () => {
    const dry = formatReload(200, { status: 'dry_run', backends: plan, limits: [] });
    expect(dry).toEqual({
      output: ['dry run: nothing was applied', 'add      web:127.0.0.1:9002 (weight 1)', 'restore  -', 'remove   web:127.0.0.1:9001', 'drain    -', 'reweight -', 'keep     1 backends'].join('\n'),
      code: 0,
    });
    const over = formatReload(200, { status: 'dry_run', backends: plan, limits: [slots] });
    expect([over.code, over.output.split('\n').at(-1)]).toEqual([1, `limit    ${slots.message}`]);
    expect(formatReload(507, { error: 'NO_CAPACITY', message: slots.message }).code).toBe(1);
    expect(formatReload(200, { status: 'partial', failures: ['listener x: taken'] }).code).toBe(1);
  });
});
