/**
 * The source of a discovered cluster, by `discovery.type`. Every source reports through the
 * same DiscoverySource interface; semantics (holds, tiers, last known set) live in the
 * reconciler and the manager, not here.
 */
import type { DiscoveryConfig, KubernetesDiscoveryConfig } from '../../shared/config/discovery-schema.ts';
import { DnsSource } from './dns-source.ts';
import { lookupKey } from './query-key.ts';
import { SharedLookups } from './shared-lookups.ts';
import type { DiscoveryResult, DiscoverySource } from './types.ts';

export function createDiscoverySource(_cluster: string, config: DiscoveryConfig): DiscoverySource {
  switch (config.type) {
    case 'dns':
      return new DnsSource(config);
    case 'kubernetes':
      return new LazyKubernetesSource(config, async () => import('./kubernetes-source.ts'));
    default:
      throw new Error(`discovery: unknown source ${JSON.stringify(config satisfies never)}`);
  }
}

/**
 * A source factory for one control plane: DNS clusters that ask the same question (same
 * lookup key) share one lookup per refresh; each Kubernetes cluster keeps its own watch.
 */
export function createDiscoverySources(create: typeof createDiscoverySource = createDiscoverySource): (cluster: string, config: DiscoveryConfig) => DiscoverySource {
  const shared = new SharedLookups();
  return (cluster, config) => (config.type === 'dns' ? shared.source(lookupKey(config), () => create(cluster, config)) : create(cluster, config));
}

type KubernetesModule = Pick<typeof import('./kubernetes-source.ts'), 'createKubernetesSource'>;

/**
 * Loads @kubernetes/client-node (about 1,000 modules with undici, ~25 MB of the
 * control-plane thread's memory, measured with bench/idle-rss.ts) only when a cluster
 * uses Kubernetes discovery: a process without one never pays for it.
 */
export class LazyKubernetesSource implements DiscoverySource {
  readonly #config: KubernetesDiscoveryConfig;
  readonly #load: () => Promise<KubernetesModule>;
  #inner: Promise<DiscoverySource | undefined> | undefined;
  #stopped = false;

  constructor(config: KubernetesDiscoveryConfig, load: () => Promise<KubernetesModule>) {
    this.#config = config;
    this.#load = load;
  }

  start(report: (result: DiscoveryResult) => void): void {
    this.#inner = this.#load().then(
      (module) => {
        if (this.#stopped) return undefined;
        const inner = module.createKubernetesSource(this.#config);
        inner.start(report);
        return inner;
      },
      (error: unknown) => {
        // Like any source failure: reported, and the last known set stays.
        if (!this.#stopped) report({ kind: 'error', message: `loading the Kubernetes client failed: ${String(error)}` });
        return undefined;
      },
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await (await this.#inner)?.stop();
  }
}
