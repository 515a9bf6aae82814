/**
 * Operator writes to the registry: each one a single etcd transaction guarded by the key's
 * mod revision, so two operators changing the same key at once cannot lose an update. The
 * caller passes the mod revision its decision was based on (the applied entry's, or 0 for
 * "the key is absent"); when etcd holds a newer value the write does nothing and answers a
 * conflict carrying that current value, for the operator to look at and retry.
 *
 * A write does not change local state: the writer applies its own change from its watch,
 * like every other instance, so all instances apply the same sequence.
 *
 * With the registry down (per the watch loop) a write is refused at once, without a call;
 * a call that fails tells the loop, which re-reads instead of trusting a silent watch.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { registryUnavailable } from './errors.ts';
import { formatKey, parseEntry, serializeValue, type ParsedValue, type RegistryEntry, type RegistryKey } from './keys.ts';

/** The watch loop as a write sees it. */
export interface RegistryHealth {
  status(): { readonly up: boolean };
  reportUnreachable(error: unknown): void;
}

export interface CurrentValue {
  /** The value text in etcd, or null when the key is absent. */
  readonly text: string | null;
  /** The value parsed (absent when the key is absent or its value is unusable). */
  readonly parsed: ParsedValue | undefined;
  /** 0 when the key is absent. */
  readonly modRevision: number;
}

export type WriteResult =
  | { readonly ok: true; readonly revision: number }
  | {
      readonly ok: false;
      readonly error: 'SLUICE_REGISTRY_CONFLICT';
      readonly message: string;
      readonly current: CurrentValue;
      /** etcd's revision when the guard failed: a state applied up to it holds the current value. */
      readonly revision: number;
    };

export interface RegistryWriterOptions {
  readonly client: Etcd3;
  readonly prefix: string;
  readonly describe: string;
  readonly health: RegistryHealth;
}

export class RegistryWriter {
  private readonly options: RegistryWriterOptions;

  constructor(options: RegistryWriterOptions) {
    this.options = options;
  }

  /** Put `entry` if its key's mod revision is still `expectedModRevision` (0: still absent). */
  put(entry: RegistryEntry, expectedModRevision: number): Promise<WriteResult> {
    const key = formatKey(this.options.prefix, entry.key);
    return this.guarded(key, expectedModRevision, this.options.client.put(key).value(serializeValue(entry)));
  }

  /** Delete `key` if its mod revision is still `expectedModRevision`. */
  delete(key: RegistryKey, expectedModRevision: number): Promise<WriteResult> {
    const full = formatKey(this.options.prefix, key);
    return this.guarded(full, expectedModRevision, this.options.client.delete().key(full));
  }

  private async guarded(key: string, expectedModRevision: number, operation: Parameters<ReturnType<Etcd3['if']>['then']>[0]): Promise<WriteResult> {
    const { client, describe, health } = this.options;
    if (!health.status().up) throw registryUnavailable(describe, `write ${key}`);
    let response;
    try {
      response = await client.if(key, 'Mod', '==', expectedModRevision).then(operation).else(client.get(key)).commit();
    } catch (error) {
      health.reportUnreachable(error);
      throw registryUnavailable(describe, `write ${key}`, error);
    }
    if (response.succeeded) return { ok: true, revision: Number(response.header.revision) };
    const kv: IKeyValue | undefined = response.responses[0]?.response_range.kvs[0];
    const current: CurrentValue =
      kv === undefined
        ? { text: null, parsed: undefined, modRevision: 0 }
        : { text: kv.value.toString(), parsed: parseEntry(this.options.prefix, key, kv.value.toString()), modRevision: Number(kv.mod_revision) };
    return {
      ok: false,
      error: 'SLUICE_REGISTRY_CONFLICT',
      message: `${key} changed since revision ${expectedModRevision}: it is now ${current.text === null ? 'absent' : `at revision ${current.modRevision}`}`,
      current,
      revision: Number(response.header.revision),
    };
  }
}
