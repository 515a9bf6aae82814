import { describe, expect, it } from 'vitest';
import { formatListener, formatTable, parseCtlArgs } from '../../src/ctl.ts';

describe('sluice ctl arguments', () => {
  it.each<[string[], object]>([
    [['list'], { method: 'GET', path: '/backends' }],
    [['list', '--cluster', 'web'], { method: 'GET', path: '/backends', cluster: 'web' }],
    [['add', 'web', '127.0.0.1:9001'], { method: 'POST', path: '/backends', body: { cluster: 'web', address: '127.0.0.1:9001' } }],
    [['add', 'web', '[::1]:9001', '--weight', '3'], { method: 'POST', path: '/backends', body: { cluster: 'web', address: '[::1]:9001', weight: 3 } }],
    [['remove', 'web:127.0.0.1:9001'], { method: 'DELETE', path: '/backends/web%3A127.0.0.1%3A9001' }],
    [['remove', 'web:127.0.0.1:9001', '--force'], { method: 'DELETE', path: '/backends/web%3A127.0.0.1%3A9001?force=true' }],
    [['drain', 'web:[::1]:9001'], { method: 'POST', path: '/backends/web%3A%5B%3A%3A1%5D%3A9001/drain' }],
    [['undrain', 'web:h:1'], { method: 'POST', path: '/backends/web%3Ah%3A1/undrain' }],
    [['weight', 'web:h:1', '0'], { method: 'PATCH', path: '/backends/web%3Ah%3A1', body: { weight: 0 } }],
    [['routes', 'web'], { method: 'GET', path: '/listeners/web', listener: true }],
    [
      ['routes', 'web', 'web=90', 'canary=10'],
      { method: 'PATCH', path: '/listeners/web/routes', body: { routes: [{ cluster: 'web', weight: 90 }, { cluster: 'canary', weight: 10 }] }, listener: true },
    ],
  ])('%j', (args, request) => {
    expect(parseCtlArgs(args, {}).request).toEqual(request);
  });

  it('takes the admin URL from the flag, then the environment, then the default', () => {
    expect(parseCtlArgs(['list'], {}).admin).toBe('http://127.0.0.1:9090');
    expect(parseCtlArgs(['list'], { SLUICE_ADMIN_URL: 'http://10.0.0.1:9999/' }).admin).toBe('http://10.0.0.1:9999');
    expect(parseCtlArgs(['--admin', 'http://h:1', 'list'], { SLUICE_ADMIN_URL: 'http://x:2' }).admin).toBe('http://h:1');
    expect(parseCtlArgs(['--token-env', 'MY_TOKEN', 'list'], {}).tokenEnv).toBe('MY_TOKEN');
  });

  it.each([
    [[], /missing command/],
    [['frobnicate'], /unknown ctl command "frobnicate"/],
    [['add', 'web'], /add takes 2 arguments, got 1/],
    [['weight', 'web:h:1', 'heavy'], /the weight must be a whole number/],
    [['drain', 'nocolon'], /expected a backend ID like web:127.0.0.1:9001/],
    [['add', 'web', 'h:1', '--weight=-1'], /--weight must be a whole number/],
    [['add', 'web', 'h:1', '--weight', '-1'], /argument is ambiguous/],
    [['routes'], /routes takes a listener name/],
    [['routes', 'web', 'canary'], /expected CLUSTER=WEIGHT, got "canary"/],
    [['routes', 'web', 'canary=ten'], /the weight of canary must be a whole number/],
  ])('refuses %j as a usage error', (args, message) => {
    expect(() => parseCtlArgs(args, {})).toThrow(message);
  });
});

describe('sluice ctl listener', () => {
  it('prints a listener’s routes, and the snapshot version after a change', () => {
    expect(formatListener({ name: 'web', routes: [{ cluster: 'web', weight: 90 }, { cluster: 'canary', weight: 10 }] })).toBe('web: web 90, canary 10');
    expect(formatListener({ name: 'web', routes: [{ cluster: 'web', weight: 1 }], snapshot_version: 7 })).toBe('web: web 1\nsnapshot version 7');
  });
});

describe('sluice ctl table', () => {
  it('aligns columns and marks operator drains, removals and slow-start weights', () => {
    const table = formatTable([
      { id: 'web:127.0.0.1:9001', state: 'healthy', admin: 'none', weight: 2, effective_weight: 0.4, active_connections: 0, reason: 'first probe passed' },
      { id: 'web:b:1', state: 'draining', admin: 'drain', weight: 1, effective_weight: 1, active_connections: 12, reason: 'drained by an operator' },
      { id: 'web:c:1', state: 'draining', admin: 'remove', weight: 1, effective_weight: 1, active_connections: 1, reason: 'removed by an operator' },
    ]);
    expect(table.split('\n')).toEqual([
      'ID                  STATE                WEIGHT       ACTIVE  REASON',
      'web:127.0.0.1:9001  healthy              2 (now 0.4)  0       first probe passed',
      'web:b:1             draining (admin)     1            12      drained by an operator',
      'web:c:1             draining (removing)  1            1       removed by an operator',
    ]);
  });
});
