import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectEtcd, etcdRegistryConfigSchema, instanceName } from '../../../src/controlplane/registry/etcd-client.ts';

const base = etcdRegistryConfigSchema.parse({});

function problemOf(config: object, env: NodeJS.ProcessEnv = {}): string | undefined {
  try {
    connectEtcd(etcdRegistryConfigSchema.parse(config), env).client.close();
    return undefined;
  } catch (error) {
    return `${(error as { code?: string }).code}: ${(error as Error).message}`;
  }
}

describe('registry.etcd config', () => {
  it('defaults: the local etcd, /sluice/v1/, the host name as instance, not required', () => {
    expect(base).toEqual({ endpoints: ['http://127.0.0.1:2379'], prefix: '/sluice/v1/', required: false });
    expect(instanceName(base, () => 'host-a')).toBe('host-a');
    expect(instanceName({ ...base, instance: 'lb-1' }, () => 'host-a')).toBe('lb-1');
  });

  it.each([
    [{ endpoints: ['127.0.0.1:2379'] }, 'endpoints.0'],
    [{ endpoints: [] }, 'endpoints'],
    [{ prefix: 'sluice' }, 'prefix'],
    [{ prefix: '/sluice/v1' }, 'prefix'],
    [{ instance: 'a/b' }, 'instance'],
    [{ tls: { ca: 'x', extra: 1 } }, 'tls'],
  ])('%j is refused at %s', (config, at) => {
    const parsed = etcdRegistryConfigSchema.safeParse(config);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path.join('.')).toBe(at);
  });

  it.each([
    [{ username_env: 'U', password_env: 'P' }, { U: 'root', P: 'pw' }, undefined],
    [{ username_env: 'U', password_env: 'P' }, { U: 'root' }, 'SLUICE_REGISTRY_CONFIG: registry.etcd.password_env: environment variable P is not set'],
    [{ username_env: 'U' }, { U: 'root' }, 'SLUICE_REGISTRY_CONFIG: registry.etcd.password_env is required with the other credential'],
    [{ tls: { cert: '/c.pem' } }, {}, 'SLUICE_REGISTRY_CONFIG: registry.etcd.tls: cert and key go together (a client certificate needs its key)'],
    [{ tls: { ca: '/nonexistent/ca.pem' } }, {}, expect.stringMatching(/^SLUICE_REGISTRY_CONFIG: registry.etcd.tls.ca: cannot read \/nonexistent\/ca.pem: ENOENT/) as unknown],
  ])('%j with env %j -> %s', (config, env, problem) => {
    expect(problemOf(config, env)).toEqual(problem);
  });

  it('reads the tls files it names', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-etcd-tls-'));
    const ca = path.join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
    // The PEM itself is parsed by grpc when it connects; here only the reading is in question.
    expect(problemOf({ tls: { ca } })).toBeUndefined();
  });
});
