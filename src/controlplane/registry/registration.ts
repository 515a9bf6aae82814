/**
 * Self-registration (`sluice ctl register --cluster api --address 10.0.0.5:8080 --ttl 10s`):
 * a backend puts `clusters/<cluster>/backends/<address>` under a lease and keeps it alive
 * while the command runs. SIGTERM or SIGINT revokes the lease, so the key goes at once and
 * every instance drains the backend; a crash lets the key expire after the TTL.
 *
 * The registration is only the backend's own claim; an operator's drain or weight lives in
 * `overrides/`, which registration never touches, so a drain survives re-registration.
 */
import { parseArgs } from 'node:util';
import { analyzeHostPort } from '../../shared/address.ts';
import { parseDuration } from '../../shared/duration.ts';
import { SluiceError } from '../../shared/errors.ts';
import { connectEtcd, etcdRegistryConfigSchema, type EtcdRegistryConfig } from './etcd-client.ts';
import { RegistryError } from './errors.ts';
import { formatKey, parseKey, serializeValue } from './keys.ts';
import { LeasedKey } from './leased-key.ts';
import type { RegistryLog } from './watch-loop.ts';
import type { Etcd3 } from 'etcd3';

export interface RegistrationRequest {
  readonly cluster: string;
  readonly address: string;
  readonly weight: number;
  /** Whole seconds (etcd lease TTLs are seconds), at least 1. */
  readonly ttlSeconds: number;
}

/** Where the signals come from: `process`, or an emitter in a test. */
export interface SignalSource {
  on(signal: 'SIGTERM' | 'SIGINT', listener: () => void): unknown;
  off(signal: 'SIGTERM' | 'SIGINT', listener: () => void): unknown;
}

export interface Registration {
  /** The full etcd key. */
  readonly key: string;
  /** Revoke the lease: the key is deleted now. */
  stop(): Promise<void>;
  /** Stop renewing: the key expires after the TTL (what a crash looks like to the fleet). */
  abandon(): void;
}

/** The etcd lease TTL for a requested duration: whole seconds, rounded up, at least 1. */
export function leaseTtlSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** What is wrong with `request`, or undefined. */
export function registrationProblem(prefix: string, request: RegistrationRequest): string | undefined {
  if (!analyzeHostPort(request.address).ok) return `--address: expected host:port, got ${JSON.stringify(request.address)}`;
  const key = formatKey(prefix, { kind: 'backend', cluster: request.cluster, address: request.address });
  if (parseKey(prefix, key)?.kind !== 'backend') return `--cluster: expected a cluster name without / or spaces, got ${JSON.stringify(request.cluster)}`;
  if (!Number.isInteger(request.weight) || request.weight < 0 || request.weight > 10_000) return '--weight: expected an integer from 0 to 10000';
  if (!Number.isInteger(request.ttlSeconds) || request.ttlSeconds < 1) return '--ttl: expected at least 1s';
  return undefined;
}

export const REGISTER_USAGE = `usage: sluice ctl register --cluster NAME --address HOST:PORT [--ttl 10s] [--weight 1]
                           [--etcd URL[,URL...]] [--prefix /sluice/v1/] [--username-env NAME --password-env NAME]
Keeps the backend registered in etcd until SIGTERM or SIGINT, which deletes the registration.`;

function registerUsage(message: string): SluiceError {
  return new SluiceError('SLUICE_USAGE', `${message}\n${REGISTER_USAGE}`);
}

function parseRegisterOptions(args: readonly string[]) {
  try {
    return parseArgs({
      args: [...args],
      options: {
        cluster: { type: 'string' },
        address: { type: 'string' },
        ttl: { type: 'string', default: '10s' },
        weight: { type: 'string', default: '1' },
        etcd: { type: 'string' },
        prefix: { type: 'string' },
        'username-env': { type: 'string' },
        'password-env': { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    // node:util's own messages (an unknown option, a missing value) are usage errors too.
    throw registerUsage((error as Error).message);
  }
}

/** `sluice ctl register …` arguments (after `register`) -> what to register where. Pure. */
export function parseRegisterArgs(args: readonly string[]): { readonly config: EtcdRegistryConfig; readonly request: RegistrationRequest } {
  const { values, positionals } = parseRegisterOptions(args);
  if (positionals.length > 0) throw registerUsage(`unexpected argument "${positionals.join(' ')}"`);
  if (values.cluster === undefined || values.address === undefined) throw registerUsage('--cluster and --address are required');
  const ttlMs = parseDuration(values.ttl);
  if (ttlMs === undefined || ttlMs === 0) throw registerUsage(`--ttl: expected a duration like 10s, got "${values.ttl}"`);
  if (!/^\d+$/.test(values.weight)) throw registerUsage('--weight: expected an integer from 0 to 10000');
  const parsed = etcdRegistryConfigSchema.safeParse({
    ...(values.etcd === undefined ? {} : { endpoints: values.etcd.split(',') }),
    ...(values.prefix === undefined ? {} : { prefix: values.prefix }),
    ...(values['username-env'] === undefined ? {} : { username_env: values['username-env'] }),
    ...(values['password-env'] === undefined ? {} : { password_env: values['password-env'] }),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw registerUsage(`--${String(issue?.path[0] ?? 'etcd').replace('endpoints', 'etcd').replace('_', '-')}: ${issue?.message ?? 'invalid'}`);
  }
  const request = { cluster: values.cluster, address: values.address, weight: Number(values.weight), ttlSeconds: leaseTtlSeconds(ttlMs) };
  const problem = registrationProblem(parsed.data.prefix, request);
  if (problem !== undefined) throw registerUsage(problem);
  return { config: parsed.data, request };
}

export async function register(
  connection: { readonly client: Etcd3; readonly prefix: string; readonly describe: string },
  request: RegistrationRequest,
  log: RegistryLog,
): Promise<Registration> {
  const problem = registrationProblem(connection.prefix, request);
  if (problem !== undefined) throw new RegistryError('SLUICE_REGISTRY_CONFIG', problem);
  const key = formatKey(connection.prefix, { kind: 'backend', cluster: request.cluster, address: request.address });
  const value = serializeValue({ key: { kind: 'backend', cluster: request.cluster, address: request.address }, value: { weight: request.weight } });
  const leased = new LeasedKey({ client: connection.client, key, ttlSeconds: request.ttlSeconds, describe: connection.describe, log }, value);
  await leased.start();
  log.info({ registry: connection.describe, key, ttl_s: request.ttlSeconds }, 'registered');
  return { key, stop: () => leased.stop(), abandon: () => leased.abandon() };
}

/**
 * The ctl command: register, hold until SIGTERM or SIGINT, deregister, close. Resolves with
 * the exit code (1 when etcd could not be reached at the start).
 */
export async function runRegistration(
  config: EtcdRegistryConfig,
  request: RegistrationRequest,
  deps: { readonly log: RegistryLog; readonly env?: NodeJS.ProcessEnv; readonly signals?: SignalSource },
): Promise<number> {
  const connection = connectEtcd(config, deps.env);
  const signals: SignalSource = deps.signals ?? process;
  // Listening before the key is put: a SIGTERM that arrives while registering must still
  // deregister, not kill the process with the key left behind until its lease expires.
  let received: string | undefined;
  let wake: (() => void) | undefined;
  const onTerm = (): void => {
    received ??= 'SIGTERM';
    wake?.();
  };
  const onInt = (): void => {
    received ??= 'SIGINT';
    wake?.();
  };
  signals.on('SIGTERM', onTerm);
  signals.on('SIGINT', onInt);
  try {
    let registration: Registration;
    try {
      registration = await register(connection, request, deps.log);
    } catch (error) {
      deps.log.warn({ registry: connection.describe, error: (error as Error).message }, 'registration failed');
      return 1;
    }
    const signal = received ?? (await new Promise<string>((resolve) => (wake = () => resolve(received ?? 'SIGTERM'))));
    await registration.stop();
    deps.log.info({ registry: connection.describe, key: registration.key, signal }, 'deregistered');
    return 0;
  } finally {
    signals.off('SIGTERM', onTerm);
    signals.off('SIGINT', onInt);
    connection.client.close();
  }
}
