import { describe, expect, it } from 'vitest';
import { BackendRegistry } from '../../../src/controlplane/backend-registry.ts';
import { SlotAllocator } from '../../../src/controlplane/slot-allocator.ts';
import { parseConfig } from '../../../src/shared/config/load.ts';
import type { Config } from '../../../src/shared/config/schema.ts';

function config(acl: string, extra = ''): Config {
  return parseConfig(
    [
      'listeners:',
      '  - name: web',
      '    listen: 127.0.0.1:8080',
      '    cluster: web',
      `    acl: ${acl}`,
      extra,
      'clusters:',
      '  - name: web',
      '    backends: []',
    ].join('\n'),
    'config.yaml',
  );
}

const aclOf = (registry: BackendRegistry) => registry.snapshotContent(0).listeners[0]?.acl;

describe('listener acls set at runtime', () => {
  it('replace the file acl in the next snapshot (a new listeners object, so it is published); unknown listeners are refused', () => {
    const registry = new BackendRegistry(config('{deny: [10.0.0.0/8]}'), new SlotAllocator(16));
    expect(aclOf(registry)).toEqual({ allow: [], deny: ['10.0.0.0/8'] });
    const before = registry.snapshotContent(0).listeners;
    expect(registry.snapshotContent(0).listeners).toBe(before);
    expect(registry.setListenerAcl('web', { allow: [], deny: ['127.0.0.4/32'] })).toBe(true);
    expect(registry.snapshotContent(0).listeners).not.toBe(before);
    expect(aclOf(registry)).toEqual({ allow: [], deny: ['127.0.0.4/32'] });
    expect(registry.setListenerAcl('nope', { allow: [], deny: [] })).toBe(false);
  });

  it('survive a reload that leaves the file acl as it was, not one that changes it', () => {
    const registry = new BackendRegistry(config('{deny: [10.0.0.0/8]}'), new SlotAllocator(16));
    registry.setListenerAcl('web', { allow: [], deny: ['127.0.0.4/32'] });
    const same = config('{deny: [10.0.0.0/8]}', '    accept_proxy: true');
    registry.setListeners(same);
    expect(aclOf(registry)).toEqual({ allow: [], deny: ['127.0.0.4/32'] });
    registry.setListeners(config('{deny: [11.0.0.0/8]}'));
    expect(aclOf(registry)).toEqual({ allow: [], deny: ['11.0.0.0/8'] });
  });

  it('come back after a control-plane restart, from the last snapshot', () => {
    const file = config('{deny: [10.0.0.0/8]}');
    const registry = new BackendRegistry(file, new SlotAllocator(16));
    registry.setListenerAcl('web', { allow: ['127.0.0.0/8'], deny: [] });
    const published = { version: 5, ...registry.snapshotContent(0) };
    const restarted = new BackendRegistry(file, new SlotAllocator(16));
    restarted.recoverListenerAcls(published);
    expect(aclOf(restarted)).toEqual({ allow: ['127.0.0.0/8'], deny: [] });
    // ...and still yield to a later change of the file.
    restarted.setListeners(config('{deny: [12.0.0.0/8]}'));
    expect(aclOf(restarted)).toEqual({ allow: [], deny: ['12.0.0.0/8'] });
  });

  it('can clear the acl: an empty one leaves the listener open to all', () => {
    const registry = new BackendRegistry(config('{deny: [10.0.0.0/8]}'), new SlotAllocator(16));
    registry.setListenerAcl('web', { allow: [], deny: [] });
    expect(aclOf(registry)).toBeUndefined();
  });
});
