/**
 * Coded errors thrown at boundaries (config load, startup, API input). Callers branch on
 * `code`, never on the message. The hot path never throws these: it returns sentinels.
 */
export type SluiceErrorCode =
  | 'SLUICE_CONFIG_INVALID'
  | 'SLUICE_CONFIG_UNREADABLE'
  | 'SLUICE_SNAPSHOT_CORRUPT'
  | 'SLUICE_SNAPSHOT_TOO_LARGE'
  | 'SLUICE_CAPACITY_EXCEEDED'
  | 'SLUICE_LISTEN_FAILED'
  | 'SLUICE_ACCESS_LOG_UNWRITABLE'
  | 'SLUICE_WORKER_FAILED'
  | 'SLUICE_USAGE';

export class SluiceError extends Error {
  readonly code: SluiceErrorCode;

  constructor(code: SluiceErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SluiceError';
    this.code = code;
  }
}
