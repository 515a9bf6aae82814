/**
 * registry.etcd.tls against a real etcd that serves https and requires client certificates.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectEtcd, type EtcdRegistryConfig } from '../../src/controlplane/registry/etcd-client.ts';
import { WatchLoop } from '../../src/controlplane/registry/watch-loop.ts';
import { createTestCa, type TestCa } from '../helpers/certs.ts';
import { eventually } from '../helpers/client.ts';
import { startEtcd, type EtcdServer } from '../helpers/etcd.ts';

let ca: TestCa;
let dir: string;
let etcd: EtcdServer;
const file = (name: string, content: Buffer): string => {
  const at = path.join(dir, name);
  writeFileSync(at, content);
  return at;
};

beforeAll(async () => {
  ca = createTestCa();
  dir = mkdtempSync(path.join(tmpdir(), 'sluice-etcd-tls-'));
  const server = ca.issue('etcd', ['IP:127.0.0.1']);
  etcd = await startEtcd({ tls: { ca: file('ca.pem', ca.cert), cert: file('server.pem', server.cert), key: file('server-key.pem', server.key) } });
  await etcd.client().put('/sluice/v1/clusters/api/backends/10.0.0.1:80').value('{"weight":1}');
});

afterAll(async () => {
  await etcd.stop();
  ca.remove();
  rmSync(dir, { recursive: true, force: true });
});

async function syncWith(tls: EtcdRegistryConfig['tls']): Promise<WatchLoop> {
  const conn = connectEtcd({ endpoints: [etcd.endpoint], prefix: '/sluice/v1/', required: false, ...(tls === undefined ? {} : { tls }) }, {}, 1000);
  const loop = new WatchLoop({ client: conn.client, prefix: conn.prefix, describe: conn.describe, log: { info: () => undefined, warn: () => undefined }, onChanges: () => undefined, retryMaxMs: 200 });
  loop.start();
  await eventually(() => Promise.resolve(loop.status()), (s) => s.up || s.lastError !== 'not read yet');
  await loop.close();
  conn.client.close();
  return loop;
}

it('a client certificate from tls.cert / tls.key, checked against tls.ca, lets the loop read; without it etcd refuses', async () => {
  const client = ca.issue('sluice', ['DNS:sluice']);
  const good = await syncWith({ ca: path.join(dir, 'ca.pem'), cert: file('client.pem', client.cert), key: file('client-key.pem', client.key) });
  expect(good.status().up).toBe(true);
  expect([...good.state().applied.keys()]).toEqual(['/sluice/v1/clusters/api/backends/10.0.0.1:80']);

  const anonymous = await syncWith({ ca: path.join(dir, 'ca.pem') });
  expect(anonymous.status().up).toBe(false);
  expect(anonymous.status().lastError).toMatch(/bad certificate/);
});
