/**
 * The source of a discovered cluster, by `discovery.type`. Every source reports through the
 * same DiscoverySource interface; semantics (holds, tiers, last known set) live in the
 * reconciler and the manager, not here.
 */
import type { DiscoveryConfig } from '../../shared/config/discovery-schema.ts';
import { DnsSource } from './dns-source.ts';
import { createKubernetesSource } from './kubernetes-source.ts';
import type { DiscoverySource } from './types.ts';

export function createDiscoverySource(_cluster: string, config: DiscoveryConfig): DiscoverySource {
  switch (config.type) {
    case 'dns':
      return new DnsSource(config);
    case 'kubernetes':
      return createKubernetesSource(config);
    default:
      throw new Error(`discovery: unknown source ${JSON.stringify(config satisfies never)}`);
  }
}
