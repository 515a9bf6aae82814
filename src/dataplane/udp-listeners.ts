/**
 * The UDP listeners of one data-plane worker (the sibling of ListenerSet, which holds the
 * TCP ones): opens, updates and retires one UdpProxy per `protocol: udp` binding. A retired
 * listener (removed or moved by a reload) keeps serving its open sessions and closes when
 * the last one ended, as a removed TCP listener lets its connections finish.
 */
import type { ListenerBinding, UdpHandoverTable } from '../shared/messages.ts';
import type { ListenFailure } from './listeners.ts';
import { UdpProxy, type UdpProxyDeps, type UdpSessionEnd } from './udp-proxy.ts';

function sameSocket(a: ListenerBinding, b: ListenerBinding): boolean {
  return a.host === b.host && a.port === b.port && a.slot === b.slot && a.protocol === b.protocol;
}

export class UdpListenerSet {
  private readonly proxies = new Map<string, UdpProxy>();
  /** Removed or moved by a reload; still serving their sessions until these end. */
  private readonly retiring = new Set<UdpProxy>();
  private readonly deps: UdpProxyDeps;
  private draining = false;
  /** Handover, new side: listeners opened now hold their datagrams until `seed`. */
  private holding: boolean;

  constructor(deps: UdpProxyDeps, options: { holdForHandover?: boolean } = {}) {
    this.deps = deps;
    this.holding = options.holdForHandover === true;
  }

  get holdingForHandover(): boolean {
    return this.holding;
  }

  /** Handover, new side: seed each listener with the old process's sessions and serve what was held. */
  seed(tables: readonly UdpHandoverTable[]): number {
    this.holding = false;
    const byListener = new Map(tables.map((t) => [t.listener, t.sessions]));
    let seeded = 0;
    for (const [name, proxy] of this.proxies) {
      const sessions = byListener.get(name) ?? [];
      proxy.seed(sessions);
      seeded += sessions.length;
    }
    return seeded;
  }

  /**
   * Handover, old side: every UDP listener exports its sessions. With `stop`, it starts none
   * from now on and `closeAll` follows once every worker did (see UdpProxy.handOver); no
   * listener opens after.
   */
  handOver(stop: boolean): UdpHandoverTable[] {
    if (stop) {
      this.draining = true;
      for (const proxy of this.retiring) proxy.retire();
    }
    return [...this.proxies].map(([listener, proxy]) => ({ listener, sessions: proxy.handOver(stop) }));
  }

  /** Handover, old side: every worker's sessions, so a client moved between workers keeps its backend. */
  share(tables: readonly UdpHandoverTable[]): void {
    const byListener = new Map(tables.map((t) => [t.listener, t.sessions]));
    for (const [name, proxy] of this.proxies) proxy.learn(byListener.get(name) ?? []);
  }

  /**
   * Make the open UDP listeners equal the udp entries of `bindings`: open new ones, retire
   * removed or moved ones, and update the limits of the others in place (their sessions go
   * on). Resolves with the bind failures.
   */
  async apply(bindings: readonly ListenerBinding[]): Promise<ListenFailure[]> {
    this.forgetClosed();
    const wanted = new Map(bindings.filter((b) => b.protocol === 'udp').map((b) => [b.name, b]));
    for (const [name, proxy] of this.proxies) {
      const next = wanted.get(name);
      if (next?.udp !== undefined && sameSocket(proxy.binding, next)) {
        proxy.update(next.udp);
        continue;
      }
      this.proxies.delete(name);
      proxy.retire();
      if (!proxy.closed) this.retiring.add(proxy);
    }
    const opening = [...wanted.values()].filter((b) => !this.proxies.has(b.name)).map(async (b) => this.open(b));
    const results = await Promise.all(opening);
    return results.filter((r): r is ListenFailure => r !== undefined);
  }

  names(): string[] {
    return [...this.proxies.keys()];
  }

  /** Open sessions over every UDP listener of this worker, retiring ones included. */
  get sessions(): number {
    let n = 0;
    for (const proxy of this.all()) n += proxy.sessions;
    return n;
  }

  /** Draining: sessions go on, no new one starts, each socket closes after its last session. */
  stopNewSessions(): void {
    this.draining = true;
    for (const proxy of this.all()) proxy.retire();
  }

  async whenIdle(): Promise<void> {
    await Promise.all(this.all().map(async (proxy) => proxy.whenIdle()));
  }

  /** End sessions to backends that are not in `keep` (drained or removed: a new snapshot said so). */
  endUnkept(keep: ReadonlyMap<number, string>): number {
    let n = 0;
    for (const proxy of this.all()) n += proxy.endUnkept(keep);
    return n;
  }

  endAll(reason: UdpSessionEnd): number {
    let n = 0;
    for (const proxy of this.all()) n += proxy.endAll(reason);
    return n;
  }

  closeAll(): void {
    for (const proxy of this.all()) proxy.close();
    this.proxies.clear();
    this.retiring.clear();
  }

  private all(): UdpProxy[] {
    return [...this.proxies.values(), ...this.retiring];
  }

  private forgetClosed(): void {
    for (const proxy of this.retiring) if (proxy.closed) this.retiring.delete(proxy);
  }

  private async open(binding: ListenerBinding): Promise<ListenFailure | undefined> {
    if (binding.udp === undefined) throw new Error(`udp listener ${binding.name} has no udp settings`);
    const proxy = new UdpProxy(binding, binding.udp, this.deps);
    const failure = await proxy.bind();
    if (failure !== undefined) return failure;
    // A drain that began while this bind was in flight: the listener must not serve.
    if (this.draining) {
      proxy.close();
      return undefined;
    }
    // Set before any datagram is read (this runs in the bind's own turn), and only while the
    // seed has not come: a listener bound after it must serve at once.
    if (this.holding) proxy.hold();
    this.proxies.set(binding.name, proxy);
    return undefined;
  }
}
