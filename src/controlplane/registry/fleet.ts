/**
 * Fleet membership: every instance keeps `instances/<name>` under a lease with its version,
 * the registry revision it has applied and a hash of its routing snapshot. The key exists
 * exactly while the instance renews it, so the listing is the live fleet; equal revisions
 * and hashes across the listing mean the fleet has converged.
 */
import { createHash } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { formatKey, instanceValueSchema, isEntryOf, serializeValue, type InstanceValue } from './keys.ts';
import { LeasedKey } from './leased-key.ts';
import type { RegistryState } from './registry-state.ts';
import type { RegistryLog } from './watch-loop.ts';

export const DEFAULT_FLEET_TTL_SECONDS = 10;

export interface FleetReport {
  readonly revision: number;
  readonly snapshotHash: string;
}

export interface FleetMemberOptions {
  readonly client: Etcd3;
  readonly prefix: string;
  readonly instance: string;
  readonly describe: string;
  readonly log: RegistryLog;
  readonly version: string;
  readonly ttlSeconds?: number;
  readonly now?: () => Date;
}

export class FleetMember {
  private readonly options: FleetMemberOptions;
  private readonly key: LeasedKey;
  private readonly startedAt: string;
  private last: FleetReport;

  constructor(options: FleetMemberOptions, initial: FleetReport) {
    this.options = options;
    this.startedAt = (options.now ?? (() => new Date()))().toISOString();
    this.last = initial;
    this.key = new LeasedKey(
      {
        client: options.client,
        key: formatKey(options.prefix, { kind: 'instance', instance: options.instance }),
        ttlSeconds: options.ttlSeconds ?? DEFAULT_FLEET_TTL_SECONDS,
        describe: options.describe,
        log: options.log,
      },
      this.text(initial),
    );
  }

  start(): Promise<void> {
    return this.key.start();
  }

  /** Publish what this instance now runs; a report equal to the last one costs no write. */
  async update(report: FleetReport): Promise<void> {
    if (report.revision === this.last.revision && report.snapshotHash === this.last.snapshotHash) return;
    this.last = report;
    await this.key.set(this.text(report));
  }

  /** Leave the fleet: the key is deleted now. */
  stop(): Promise<void> {
    return this.key.stop();
  }

  private text(report: FleetReport): string {
    const value: InstanceValue = {
      version: this.options.version,
      revision: report.revision,
      snapshot_hash: report.snapshotHash,
      started_at: this.startedAt,
      updated_at: (this.options.now ?? (() => new Date()))().toISOString(),
    };
    return serializeValue({ key: { kind: 'instance', instance: this.options.instance }, value });
  }
}

export interface FleetInstance {
  readonly instance: string;
  readonly version: string;
  readonly revision: number;
  readonly snapshot_hash: string;
  readonly started_at: string;
  /** Milliseconds since the instance last changed its report (its revision or hash). */
  readonly age_ms: number;
}

/** The fleet as the applied registry state shows it, sorted by instance name. Pure. */
export function fleetFromState(state: RegistryState, now: Date): FleetInstance[] {
  const instances: FleetInstance[] = [];
  for (const { entry } of state.applied.values()) {
    if (!isEntryOf(entry, 'instance')) continue;
    instances.push(describeInstance(entry.key.instance, entry.value, now));
  }
  return instances.sort((a, b) => a.instance.localeCompare(b.instance));
}

/** The fleet read straight from etcd (for a reader that does not run a watch loop, like `sluice ctl`). */
export async function readFleet(client: Etcd3, prefix: string, now: Date): Promise<FleetInstance[]> {
  const base = formatKey(prefix, { kind: 'instance', instance: '' });
  const values = await client.getAll().prefix(base).strings();
  const instances: FleetInstance[] = [];
  for (const [key, text] of Object.entries(values)) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      continue;
    }
    const parsed = instanceValueSchema.safeParse(json);
    if (parsed.success) instances.push(describeInstance(key.slice(base.length), parsed.data, now));
  }
  return instances.sort((a, b) => a.instance.localeCompare(b.instance));
}

function describeInstance(instance: string, value: InstanceValue, now: Date): FleetInstance {
  return {
    instance,
    version: value.version,
    revision: value.revision,
    snapshot_hash: value.snapshot_hash,
    started_at: value.started_at,
    age_ms: Math.max(0, now.getTime() - Date.parse(value.updated_at)),
  };
}

/** A short stable hash of a routing snapshot's content (any JSON value; key order matters). */
export function snapshotHash(content: unknown): string {
  return createHash('sha256').update(JSON.stringify(content)).digest('hex').slice(0, 16);
}
