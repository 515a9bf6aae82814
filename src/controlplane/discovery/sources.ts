/**
 * The source of a discovered cluster, by `discovery.type`. Every source reports through the
 * same DiscoverySource interface; semantics (holds, tiers, last known set) live in the
 * reconciler and the manager, not here.
 */
import type { DiscoveryConfig } from '../../shared/config/discovery-schema.ts';
import type { DiscoverySource } from './types.ts';

export function createDiscoverySource(cluster: string, config: DiscoveryConfig): DiscoverySource {
  throw new Error(`discovery: no source for ${config.type} yet (cluster ${cluster})`);
}
