/**
 * The registry's coded errors. `SLUICE_REGISTRY_UNAVAILABLE` is what the admin layer maps
 * to 503; its message names the registry and its endpoints so an operator knows which
 * dependency failed, not just that a write did.
 */
export type RegistryErrorCode = 'SLUICE_REGISTRY_UNAVAILABLE' | 'SLUICE_REGISTRY_CONFIG';

export class RegistryError extends Error {
  readonly code: RegistryErrorCode;

  constructor(code: RegistryErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'RegistryError';
    this.code = code;
  }
}

/** The error for an operation that could not reach etcd (`cause`: what the client reported). */
export function registryUnavailable(describe: string, operation: string, cause?: unknown): RegistryError {
  const why = cause === undefined ? 'etcd is unreachable' : cause instanceof Error ? cause.message : JSON.stringify(cause);
  return new RegistryError('SLUICE_REGISTRY_UNAVAILABLE', `registry ${describe}: cannot ${operation}: ${why}`, cause === undefined ? undefined : { cause });
}
