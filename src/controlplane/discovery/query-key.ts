/**
 * Which discovery configs ask the same question (pure). `queryKey` names what is asked (type,
 * name, record, port, resolvers; for Kubernetes the Service, port and kubeconfig): an answer
 * stored under one key is an answer to every config with that key, so the state file's copy of
 * a cluster's answer is used only while its key still matches. `lookupKey` adds the refresh
 * window, which decides when the question is asked again: configs with the same lookup key can
 * share one lookup per refresh.
 */
import type { DiscoveryConfig } from '../../shared/config/discovery-schema.ts';
import { normalizeName } from './srv.ts';

export function queryKey(config: DiscoveryConfig): string {
  if (config.type === 'kubernetes') return JSON.stringify(['kubernetes', config.namespace, config.service, config.port, config.kubeconfig ?? null]);
  // DNS names are case-insensitive and may end with a dot; resolvers are asked in order.
  return JSON.stringify(['dns', config.record, normalizeName(config.name), config.port ?? null, config.resolvers ?? null]);
}

export function lookupKey(config: DiscoveryConfig): string {
  if (config.type === 'kubernetes') return queryKey(config);
  return JSON.stringify([queryKey(config), config.refresh.min, config.refresh.max, config.refresh.default]);
}
