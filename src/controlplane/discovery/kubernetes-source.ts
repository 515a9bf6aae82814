/**
 * Discovery from Kubernetes EndpointSlices: client-node's informer (list, then watch from
 * the list's resourceVersion) on the Service's slices, reported as whole answers.
 *
 * What client-node's ListWatch does by itself, and what this adds:
 * - 410 Gone (an ERROR event or an HTTP status) makes it re-list; a watch that ends
 *   cleanly or times out makes it re-watch. Nothing to do here.
 * - Any other error (a 500, a list that fails, a stream cut mid-way) stops it for good
 *   (client-node#795, #958): this reports the error and starts a fresh informer (a new
 *   list) after a jittered back-off, which starts over once a watch delivers events.
 * - An answer is reported once a list has filled the cache and after every change,
 *   bursts coalesced for `coalesceMs`; never before the first list, since an empty cache
 *   is not an empty Service.
 * - stop() leaves nothing behind: client-node's own reconnect delay is not cancellable
 *   and a watch still connecting when stopped would open anyway, so the informer gets a
 *   delay function and a Watch that this source can cancel; every request says
 *   `Connection: close`, so no pooled socket outlives the request that opened it (one
 *   handshake per list or watch, which last minutes).
 */
import { homedir } from 'node:os';
import path from 'node:path';
import { ApiException, DiscoveryV1Api, KubeConfig, ListWatch, Watch, type RequestContext, type V1EndpointSlice } from '@kubernetes/client-node';
import { endpointsFromSlices, type PortSelector } from './endpoint-slices.ts';
import { restartDelayMs, WATCH_RESTART_BACKOFF, type RestartBackoffPolicy } from './restart-backoff.ts';
import type { DiscoveryResult, DiscoverySource } from './types.ts';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** A list that has not answered by then is retried, like a watch that went quiet. */
const LIST_TIMEOUT_MS = 30_000;

export interface KubernetesDiscoveryConfig {
  readonly namespace: string;
  readonly service: string;
  readonly port: PortSelector;
  /** A kubeconfig file (`~/` allowed); in-cluster service account when absent. */
  readonly kubeconfig?: string | undefined;
}

export interface KubernetesSourceOptions {
  /** How long a burst of changes is gathered into one answer. */
  readonly coalesceMs?: number;
  readonly backoff?: RestartBackoffPolicy;
  readonly random?: () => number;
  /** Every timer the source owns (answers, restarts, client-node's reconnect delays). */
  readonly timers?: SourceTimers;
}

export interface SourceTimers {
  setTimeout(callback: () => void, ms: number): NodeJS.Timeout;
  clearTimeout(timer: NodeJS.Timeout | undefined): void;
}

const NODE_TIMERS: SourceTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (timer) => {
    clearTimeout(timer);
  },
};

export function createKubernetesSource(config: KubernetesDiscoveryConfig, options: KubernetesSourceOptions = {}): DiscoverySource {
  return new KubernetesSource(config, options);
}

/** `~/x` -> `HOME/x`; config files are written by people who use `~`. */
export function expandHome(file: string, home: string): string {
  if (file === '~') return home;
  return file.startsWith('~/') ? path.join(home, file.slice(2)) : file;
}

/** One line for an error report, naming the step and what the API server or socket said. */
export function describeFailure(error: unknown): string {
  if (error instanceof ListFailure) return `list failed: ${describeCause(error.cause)}`;
  return `watch failed: ${describeCause(error)}`;
}

function describeCause(error: unknown): string {
  if (error instanceof ApiException) return `HTTP ${error.code}${statusMessage(error.body)}`;
  if (!(error instanceof Error)) return String(error);
  const statusCode = (error as { statusCode?: unknown }).statusCode;
  if (typeof statusCode === 'number') return `HTTP ${statusCode} ${error.message}`;
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return `${error.message}${cause}`;
}

/** The `message` of a Kubernetes Status body, if the body is one. */
function statusMessage(body: unknown): string {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return body === '' ? '' : `: ${body.slice(0, 200)}`;
    }
  }
  const message = (parsed as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? `: ${message}` : '';
}

/** Tags a list failure: the informer's error callback cannot tell it from a watch failure. */
class ListFailure extends Error {
  constructor(cause: unknown) {
    super('list failed', { cause });
  }
}

/**
 * A KubeConfig whose every request (list or watch) closes its connection afterwards and
 * is aborted when the source stops. applySecurityAuthentication is the one hook that both
 * the generated API client and Watch call before each request.
 */
class SourceKubeConfig extends KubeConfig {
  readonly #stopped: AbortSignal;

  constructor(stopped: AbortSignal) {
    super();
    this.#stopped = stopped;
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    context.setHeaderParam('Connection', 'close');
    // Watch passes its own signal to fetch and ignores this one; the source aborts it itself.
    context.setSignal(AbortSignal.any([this.#stopped, AbortSignal.timeout(LIST_TIMEOUT_MS)]));
  }
}

interface WatchHooks {
  readonly stopped: () => boolean;
  /** The watch reached the API server and got an answer it can live with. */
  readonly healthy: () => void;
  readonly track: (pending: Promise<unknown>) => void;
}

/**
 * Watch with bookmarks requested (they keep the resourceVersion fresh, so a reconnect
 * rarely needs a re-list), never opened after stop, aborted if stop came while it was
 * connecting, and never throwing: client-node calls it from a callback, where a rejection
 * would be unhandled.
 */
class SourceWatch extends Watch {
  readonly #hooks: WatchHooks;

  constructor(config: KubeConfig, hooks: WatchHooks) {
    super(config);
    this.#hooks = hooks;
  }

  override async watch(
    apiPath: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const hooks = this.#hooks;
    if (hooks.stopped()) return new AbortController();
    const onEvent = (phase: string, apiObj: unknown, watchObj?: unknown): void => {
      hooks.healthy();
      callback(phase, apiObj, watchObj);
    };
    let finished: () => void = () => undefined;
    const finishing = new Promise<void>((resolve) => (finished = resolve));
    const onDone = (err: unknown): void => {
      finished();
      if (err === null || err === undefined || (err instanceof Error && err.name === 'TimeoutError')) hooks.healthy();
      done(err);
    };
    // Not tracked while connecting: Watch keeps its AbortController to itself until the
    // response headers arrive, so stop() could only wait (up to Watch's 30 s timeout) for
    // an API server that accepted the connection and says nothing. It is aborted here
    // instead, as soon as it connects.
    const controller = await super.watch(apiPath, { ...queryParams, allowWatchBookmarks: true }, onEvent, onDone).catch((error: unknown) => {
      onDone(error);
      return new AbortController();
    });
    if (hooks.stopped()) controller.abort();
    // stop() waits for `done`: by then the response body is closed, not just aborted.
    else hooks.track(finishing);
    return controller;
  }
}

class KubernetesSource implements DiscoverySource {
  readonly #config: KubernetesDiscoveryConfig;
  readonly #coalesceMs: number;
  readonly #backoff: RestartBackoffPolicy;
  readonly #random: () => number;
  readonly #timers: SourceTimers;
  readonly #aborter = new AbortController();
  readonly #pending = new Set<Promise<unknown>>();
  readonly #delays = new Set<() => void>();
  #report: ((result: DiscoveryResult) => void) | undefined;
  #informer: ListWatch<V1EndpointSlice> | undefined;
  /** The current informer has listed: its cache is the Service's slices. */
  #synced = false;
  #failures = 0;
  #answerTimer: NodeJS.Timeout | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(config: KubernetesDiscoveryConfig, options: KubernetesSourceOptions) {
    this.#config = config;
    this.#coalesceMs = options.coalesceMs ?? 100;
    this.#backoff = options.backoff ?? WATCH_RESTART_BACKOFF;
    this.#random = options.random ?? Math.random;
    this.#timers = options.timers ?? NODE_TIMERS;
  }

  start(report: (result: DiscoveryResult) => void): void {
    if (this.#report !== undefined) throw new Error('this Kubernetes source was already started');
    this.#report = report;
    this.#begin();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timers.clearTimeout(this.#answerTimer);
    this.#timers.clearTimeout(this.#restartTimer);
    this.#aborter.abort();
    for (const cancel of this.#delays) cancel();
    const informer = this.#informer;
    this.#informer = undefined;
    await informer?.stop();
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  #begin(): void {
    if (this.#stopped) return;
    let kc: SourceKubeConfig;
    let api: DiscoveryV1Api;
    try {
      kc = this.#loadConfig();
      api = kc.makeApiClient(DiscoveryV1Api);
    } catch (error) {
      this.#fail(undefined, (error as Error).message);
      return;
    }
    const { namespace, service } = this.#config;
    const labelSelector = `${SERVICE_NAME_LABEL}=${service}`;
    const apiPath = `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`;
    const list = async (): Promise<Awaited<ReturnType<DiscoveryV1Api['listNamespacedEndpointSlice']>>> => {
      try {
        const slices = await api.listNamespacedEndpointSlice({ namespace, labelSelector });
        // The informer fills its cache right after this resolves; the answer is read on a timer, after it.
        if (informer === this.#informer) this.#listed();
        return slices;
      } catch (error) {
        throw new ListFailure(error);
      }
    };
    const watch = new SourceWatch(kc, {
      stopped: (): boolean => this.#stopped || informer !== this.#informer,
      healthy: () => {
        if (informer === this.#informer) this.#failures = 0;
      },
      track: (pending) => {
        void this.#track(pending);
      },
    });
    // What makeInformer builds, plus the cancellable delay and watch (see the file comment).
    const informer: ListWatch<V1EndpointSlice> = new ListWatch<V1EndpointSlice>(apiPath, watch, () => this.#track(list()), false, labelSelector, undefined, {
      delayFn: (ms) => this.#delay(ms),
    });
    informer.on('change', () => {
      if (informer === this.#informer && this.#synced) this.#scheduleAnswer();
    });
    informer.on('error', (error: unknown) => this.#fail(informer, describeFailure(error)));
    this.#informer = informer;
    this.#synced = false;
    // Not tracked: it resolves only once the first watch has connected (see SourceWatch).
    informer.start().catch((error: unknown) => this.#fail(informer, describeFailure(error)));
  }

  #loadConfig(): SourceKubeConfig {
    const kc = new SourceKubeConfig(this.#aborter.signal);
    const file = this.#config.kubeconfig;
    if (file === undefined) {
      if (process.env.KUBERNETES_SERVICE_HOST === undefined || process.env.KUBERNETES_SERVICE_PORT === undefined) {
        throw new Error('not in a Kubernetes pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset) and no discovery.kubeconfig given');
      }
      kc.loadFromCluster();
      return kc;
    }
    const resolved = expandHome(file, homedir());
    try {
      kc.loadFromFile(resolved);
    } catch (error) {
      throw new Error(`cannot load kubeconfig ${resolved}: ${(error as Error).message}`, { cause: error });
    }
    if (kc.getCurrentCluster() === null) throw new Error(`kubeconfig ${resolved}: the current context names no cluster`);
    return kc;
  }

  #listed(): void {
    this.#synced = true;
    this.#scheduleAnswer();
  }

  #scheduleAnswer(): void {
    if (this.#answerTimer !== undefined || this.#stopped) return;
    this.#answerTimer = this.#timers.setTimeout(() => {
      this.#answerTimer = undefined;
      const informer = this.#informer;
      if (informer === undefined || !this.#synced || this.#stopped) return;
      const endpoints = endpointsFromSlices(informer.list(this.#config.namespace), this.#config.port);
      this.#report?.({ kind: 'answer', endpoints });
    }, this.#coalesceMs);
  }

  /** Report, drop the informer (client-node will not restart it) and start afresh later. */
  #fail(informer: ListWatch<V1EndpointSlice> | undefined, message: string): void {
    if (this.#stopped || informer !== this.#informer) return;
    const { namespace, service } = this.#config;
    this.#report?.({ kind: 'error', message: `kubernetes endpointslices of ${namespace}/${service}: ${message}` });
    this.#informer = undefined;
    this.#synced = false;
    this.#timers.clearTimeout(this.#answerTimer);
    this.#answerTimer = undefined;
    if (informer !== undefined) void this.#track(informer.stop());
    this.#failures++;
    const delay = restartDelayMs(this.#backoff, this.#failures, this.#random);
    this.#restartTimer = this.#timers.setTimeout(() => {
      this.#restartTimer = undefined;
      this.#begin();
    }, delay);
  }

  /** client-node's reconnect delay, cut short by stop() (after which its watch does nothing). */
  #delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const cancel = (): void => {
        this.#timers.clearTimeout(timer);
        this.#delays.delete(cancel);
        resolve();
      };
      const timer = this.#timers.setTimeout(cancel, ms);
      this.#delays.add(cancel);
    });
  }

  #track<T>(pending: Promise<T>): Promise<T> {
    this.#pending.add(pending);
    const settle = (): void => {
      this.#pending.delete(pending);
    };
    pending.then(settle, settle);
    return pending;
  }
}
