/**
 * registry.etcd credentials from env variables against a real etcd with auth enabled (its
 * own server: enabling auth would lock out the other registry tests).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectEtcd } from '../../src/controlplane/registry/etcd-client.ts';
import { WatchLoop } from '../../src/controlplane/registry/watch-loop.ts';
import { eventually } from '../helpers/client.ts';
import { startEtcd, type EtcdServer } from '../helpers/etcd.ts';

let etcd: EtcdServer;

beforeAll(async () => {
  etcd = await startEtcd();
  const admin = etcd.client();
  await admin.role('root').create();
  const root = await admin.user('root').create('s3cret');
  await root.addRole('root');
  await admin.put('/sluice/v1/clusters/api/backends/10.0.0.1:80').value('{"weight":2}');
  await admin.auth.authEnable({});
});

afterAll(async () => {
  await etcd.stop();
});

async function syncWith(env: NodeJS.ProcessEnv): Promise<WatchLoop> {
  const conn = connectEtcd({ endpoints: [etcd.endpoint], prefix: '/sluice/v1/', username_env: 'ETCD_USER', password_env: 'ETCD_PASSWORD', required: false }, env, 1000);
  const loop = new WatchLoop({ client: conn.client, prefix: conn.prefix, describe: conn.describe, log: { info: () => undefined, warn: () => undefined }, onChanges: () => undefined, retryMaxMs: 200 });
  loop.start();
  await eventually(() => Promise.resolve(loop.status()), (s) => s.up || s.lastError !== 'not read yet');
  await loop.close();
  conn.client.close();
  return loop;
}

it('credentials named by username_env / password_env let the loop read; wrong ones leave it down with the reason', async () => {
  const good = await syncWith({ ETCD_USER: 'root', ETCD_PASSWORD: 's3cret' });
  expect(good.status().up).toBe(true);
  expect([...good.state().applied.keys()]).toEqual(['/sluice/v1/clusters/api/backends/10.0.0.1:80']);

  const bad = await syncWith({ ETCD_USER: 'root', ETCD_PASSWORD: 'wrong' });
  expect(bad.status().up).toBe(false);
  expect(bad.status().lastError).toMatch(/authentication failed/i);
});
