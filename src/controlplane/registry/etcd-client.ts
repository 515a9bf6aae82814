/**
 * `registry.etcd` config -> an Etcd3 client: endpoints, credentials from the named env vars,
 * TLS files, and fault handling chosen so a call to an unreachable etcd fails within
 * `callTimeoutMs` instead of queueing (writes must fail fast; the watch loop retries itself).
 *
 * etcd3's defaults are kept out on purpose: its per-host circuit breaker refuses every call
 * for 5 s after three failures (too slow to notice etcd is back), and its global retry
 * repeats a call three times on the same host. Here a call goes to each endpoint at most once.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import type * as Cockatiel from 'cockatiel';
import type * as EtcdPackage from 'etcd3';
import type { Etcd3, IOptions } from 'etcd3';
import type { EtcdRegistryConfig } from '../../shared/config/registry-schema.ts';
import { RegistryError } from './errors.ts';

// The schema lives with the config's (shared/config/registry-schema.ts) so `sluice validate` checks it.
export { etcdRegistryConfigSchema, type EtcdRegistryConfig } from '../../shared/config/registry-schema.ts';

/**
 * etcd3 (with gRPC and protobufjs) and cockatiel are loaded on the first connection, not with
 * this module: the control-plane thread imports the registry code on every config, and the
 * packages cost ~25 MiB of RSS in a thread that never connects (docs/data-plane-decisions.md,
 * "Process memory at idle"). Both are CommonJS, so `require` keeps connectEtcd synchronous.
 */
const requirePackage = createRequire(import.meta.url);

/** Unary calls (reads, writes, lease grants) give up after this; streams are not bounded. */
export const DEFAULT_CALL_TIMEOUT_MS = 2000;

export interface EtcdConnection {
  readonly client: Etcd3;
  /** How errors and logs name this registry: `etcd http://a:2379,http://b:2379`. */
  readonly describe: string;
  readonly prefix: string;
  readonly instance: string;
}

/** The instance name: configured, or the host's name (unique in a fleet of one per host). */
export function instanceName(config: EtcdRegistryConfig, host: () => string = hostname): string {
  return config.instance ?? host();
}

export function connectEtcd(
  config: EtcdRegistryConfig,
  env: NodeJS.ProcessEnv = process.env,
  callTimeoutMs = DEFAULT_CALL_TIMEOUT_MS,
): EtcdConnection {
  const { Etcd3: Client, isRecoverableError } = requirePackage('etcd3') as typeof EtcdPackage;
  const { handleWhen, noop, retry } = requirePackage('cockatiel') as typeof Cockatiel;
  const describe = `etcd ${config.endpoints.join(',')}`;
  const options: IOptions = {
    hosts: config.endpoints,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    faultHandling: {
      host: () => noop,
      global: retry(handleWhen(isRecoverableError), { maxAttempts: config.endpoints.length - 1 }),
    },
  };
  const auth = credentialsFrom(config, env);
  if (auth !== undefined) options.auth = auth;
  const credentials = tlsFrom(config);
  if (credentials !== undefined) options.credentials = credentials;
  return { client: new Client(options), describe, prefix: config.prefix, instance: instanceName(config) };
}

function credentialsFrom(config: EtcdRegistryConfig, env: NodeJS.ProcessEnv): { username: string; password: string } | undefined {
  if (config.username_env === undefined && config.password_env === undefined) return undefined;
  const read = (field: string, name: string | undefined): string => {
    if (name === undefined) throw new RegistryError('SLUICE_REGISTRY_CONFIG', `registry.etcd.${field} is required with the other credential`);
    const value = env[name];
    if (value === undefined || value === '') throw new RegistryError('SLUICE_REGISTRY_CONFIG', `registry.etcd.${field}: environment variable ${name} is not set`);
    return value;
  };
  return { username: read('username_env', config.username_env), password: read('password_env', config.password_env) };
}

function tlsFrom(config: EtcdRegistryConfig): IOptions['credentials'] {
  const tls = config.tls;
  if (tls === undefined) return undefined;
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new RegistryError('SLUICE_REGISTRY_CONFIG', 'registry.etcd.tls: cert and key go together (a client certificate needs its key)');
  }
  const file = (field: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new RegistryError('SLUICE_REGISTRY_CONFIG', `registry.etcd.tls.${field}: cannot read ${path}: ${(error as Error).message}`);
    }
  };
  if (tls.ca === undefined) throw new RegistryError('SLUICE_REGISTRY_CONFIG', 'registry.etcd.tls.ca is required to verify the etcd server');
  return {
    rootCertificate: file('ca', tls.ca),
    ...(tls.cert === undefined ? {} : { certChain: file('cert', tls.cert) }),
    ...(tls.key === undefined ? {} : { privateKey: file('key', tls.key) }),
  };
}
