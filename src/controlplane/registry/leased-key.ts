/**
 * One etcd key kept alive under a lease: it exists while its owner runs and disappears
 * `ttl` after the owner stops renewing (a crash, a partition), with nobody having to clean
 * up. Used for backend registrations and fleet membership.
 *
 * If the lease is lost (etcd was away longer than the TTL, so etcd expired it), the key is
 * put again under a new lease once etcd answers, retried with a jittered backoff: a
 * registration outlives an etcd outage. `stop()` revokes the lease, which deletes the key
 * at once (a clean shutdown is not mistaken for a crash).
 */
import type { Etcd3, Lease } from 'etcd3';
import { registryUnavailable } from './errors.ts';
import { retryDelay, type RegistryLog } from './watch-loop.ts';

export interface LeasedKeyOptions {
  readonly client: Etcd3;
  /** The full etcd key. */
  readonly key: string;
  readonly ttlSeconds: number;
  readonly describe: string;
  readonly log: RegistryLog;
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  readonly random?: () => number;
}

export class LeasedKey {
  private readonly options: LeasedKeyOptions;
  private value: string;
  private lease: Lease | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;

  constructor(options: LeasedKeyOptions, value: string) {
    this.options = options;
    this.value = value;
  }

  /** Grant a lease and put the key; throws a registry-unavailable error when etcd does not answer. */
  async start(): Promise<void> {
    await this.establish();
  }

  /** Replace the value, under the same lease; while the lease is being re-established, the next put carries it. */
  async set(value: string): Promise<void> {
    this.value = value;
    const lease = this.lease;
    if (lease === undefined || lease.revoked()) return;
    try {
      await lease.put(this.options.key).value(value);
    } catch (error) {
      throw registryUnavailable(this.options.describe, `update ${this.options.key}`, error);
    }
  }

  /** Revoke the lease: the key is deleted now. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const lease = this.lease;
    this.lease = undefined;
    if (lease === undefined) return;
    try {
      await lease.revoke();
    } catch (error) {
      // etcd is away: the key goes when its TTL runs out.
      this.options.log.warn({ registry: this.options.describe, key: this.options.key, error: (error as Error).message }, 'could not revoke the lease; the key expires with its ttl');
    }
  }

  /** Stop renewing without deleting: the key expires after its TTL, as if this process had died. */
  abandon(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.lease?.release();
    this.lease = undefined;
  }

  private async establish(): Promise<void> {
    const lease = this.options.client.lease(this.options.ttlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    let established = false;
    lease.on('lost', (error) => {
      // Before the put succeeded, a loss is the put's failure, which the caller handles.
      if (!established || this.lease !== lease || this.stopped) return;
      this.options.log.warn({ registry: this.options.describe, key: this.options.key, error: error.message }, 'lease lost; registering again');
      this.lease = undefined;
      this.retry();
    });
    try {
      await lease.put(this.options.key).value(this.value);
    } catch (error) {
      lease.release();
      if (this.lease === lease) this.lease = undefined;
      throw registryUnavailable(this.options.describe, `put ${this.options.key} under a ${this.options.ttlSeconds}s lease`, error);
    }
    if (this.stopped) {
      // stop() came while the put was in flight; it found no lease to revoke.
      await lease.revoke().catch(() => undefined);
      return;
    }
    established = true;
    this.failures = 0;
  }

  private retry(): void {
    if (this.stopped) return;
    this.failures++;
    const delay = retryDelay(this.failures, this.options.retryMinMs ?? 100, this.options.retryMaxMs ?? 2000, (this.options.random ?? Math.random)());
    this.retryTimer = setTimeout(() => {
      this.establish().catch(() => this.retry());
    }, delay);
  }
}
