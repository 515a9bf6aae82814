/**
 * Listener acls set through the admin API (`PUT /listeners/:name/acl`). They replace the
 * file's acl until the file's own acl for that listener changes: a reload that leaves a
 * listener's acl as it was keeps the operator's runtime change, one that edits it means
 * the file is the newer word. A listener removed by a reload loses its override.
 *
 * A restarted control plane gets them back from the last published snapshot: an acl there
 * that differs from the file's can only have come from the API.
 */
import type { AclConfig, ListenerConfig } from '../shared/config/schema.ts';
import type { Snapshot } from '../shared/snapshot/types.ts';
import { sameAcl } from './listener-snapshot.ts';

interface Override {
  readonly acl: AclConfig;
  /** The file's acl when the override was set. */
  readonly fileAcl: AclConfig | undefined;
}

export class AclOverrides {
  private readonly byListener = new Map<string, Override>();

  /** Take back, from a snapshot published before a restart, every acl that differs from the file's. */
  recover(listeners: readonly ListenerConfig[], recovered: Snapshot): void {
    for (const previous of recovered.listeners) {
      const listener = listeners.find((l) => l.name === previous.name);
      if (listener === undefined) continue;
      const acl: AclConfig = { allow: [...(previous.acl?.allow ?? [])], deny: [...(previous.acl?.deny ?? [])] };
      if (!sameAcl(acl, listener.acl)) this.byListener.set(listener.name, { acl, fileAcl: listener.acl });
    }
  }

  get(name: string): AclConfig | undefined {
    return this.byListener.get(name)?.acl;
  }

  /** The override `listener` would keep once a reload to it is reconciled (nothing changes). */
  surviving(listener: ListenerConfig): AclConfig | undefined {
    const override = this.byListener.get(listener.name);
    return override !== undefined && sameAcl(listener.acl, override.fileAcl) ? override.acl : undefined;
  }

  set(listener: ListenerConfig, acl: AclConfig): void {
    this.byListener.set(listener.name, { acl, fileAcl: listener.acl });
  }

  /** After a reload: forget overrides of listeners that are gone or whose file acl changed. */
  reconcile(listeners: readonly ListenerConfig[]): string[] {
    const dropped: string[] = [];
    for (const [name, override] of this.byListener) {
      const listener = listeners.find((l) => l.name === name);
      if (listener !== undefined && sameAcl(listener.acl, override.fileAcl)) continue;
      this.byListener.delete(name);
      dropped.push(name);
    }
    return dropped;
  }
}
