/**
 * etcd3 and cockatiel (~25 MiB of RSS in the control-plane thread, docs/data-plane-decisions.md
 * "Process memory at idle") load on the first etcd connection, not with the control plane's
 * modules, which every config imports. Checked in a fresh Node process, whose CommonJS cache
 * shows what was really loaded (vitest's own module graph would not).
 */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const CONTROL_PLANE = new URL('../../../src/controlplane/control-plane.ts', import.meta.url).href;
const ETCD_CLIENT = new URL('../../../src/controlplane/registry/etcd-client.ts', import.meta.url).href;

const SCRIPT = `
import { createRequire } from 'node:module';
const cache = createRequire(process.cwd() + '/').cache;
const loaded = () => ['etcd3', 'cockatiel'].filter((p) => Object.keys(cache).some((k) => k.includes('/node_modules/' + p + '/')));
await import(${JSON.stringify(CONTROL_PLANE)});
const afterImport = loaded();
const { connectEtcd } = await import(${JSON.stringify(ETCD_CLIENT)});
connectEtcd({ endpoints: ['http://127.0.0.1:1'], prefix: '/sluice/v1/', required: false }).client.close();
console.log(JSON.stringify({ afterImport, afterConnect: loaded() }));
`;

describe('registry packages on demand', () => {
  it('importing the control plane loads neither etcd3 nor cockatiel; the first etcd connection loads both', async () => {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--input-type=module', '--no-warnings', '-e', SCRIPT], (error, out, err) => {
        if (error === null) resolve(out);
        else reject(new Error(`${error.message}\n${err}`));
      });
    });
    expect(JSON.parse(stdout)).toEqual({ afterImport: [], afterConnect: ['etcd3', 'cockatiel'] });
  });
});
