/**
 * A simulated Kubernetes API server for EndpointSlices: the documented list + watch
 * protocol on 127.0.0.1:0, plain HTTP, no auth, and the failures a real one shows.
 *
 * - `GET /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices?labelSelector=k=v` answers an
 *   EndpointSliceList whose `metadata.resourceVersion` is the store's current version.
 * - `...&watch=true&resourceVersion=N[&allowWatchBookmarks=true]` streams newline-delimited
 *   watch events after N: first the history after N, then live changes. A label selector
 *   turns a relabel into ADDED/DELETED, as the API server's watch filter does.
 * - `expire('event')` compacts the history and sends open watches `ERROR` (Status 410
 *   Expired) before ending them; a later watch from an older version gets the same event.
 *   `expire('status')` compacts and ends open watches; a later watch from an older version
 *   gets HTTP 410. Both are what API servers do (watch cache vs etcd).
 * - `failNext`, `stallNext` / `releaseStalled`, `endWatches` (clean end, as at `timeoutSeconds`), `cutWatches`
 *   (the connection dies in the middle of an event).
 * A kubeconfig pointing at it is written to a temp dir (`insecure-skip-tls-verify`, which
 * client-node requires before it talks plain http).
 */
import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const API_PATH = /^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/([^/]+)\/endpointslices$/;
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface EndpointSliceJson {
  apiVersion: 'discovery.k8s.io/v1';
  kind: 'EndpointSlice';
  metadata: { name: string; namespace: string; labels: Record<string, string>; resourceVersion?: string };
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints: { addresses: string[]; conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean } }[];
  ports: { name?: string; port?: number; protocol?: string }[];
}

/** An EndpointSlice of `service`, as the EndpointSlice controller would write it. */
export function endpointSlice(
  namespace: string,
  service: string,
  name: string,
  endpoints: EndpointSliceJson['endpoints'],
  options: { addressType?: EndpointSliceJson['addressType']; ports?: EndpointSliceJson['ports'] } = {},
): EndpointSliceJson {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace, labels: { [SERVICE_NAME_LABEL]: service } },
    addressType: options.addressType ?? 'IPv4',
    endpoints,
    ports: options.ports ?? [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

export type RequestKind = 'list' | 'watch';

export interface RecordedRequest {
  readonly kind: RequestKind;
  readonly namespace: string;
  readonly query: URLSearchParams;
  readonly headers: http.IncomingHttpHeaders;
}

interface Change {
  readonly rv: number;
  readonly before: EndpointSliceJson | undefined;
  readonly after: EndpointSliceJson | undefined;
}

interface Watcher {
  readonly namespace: string;
  readonly selector: (labels: Record<string, string>) => boolean;
  readonly bookmarks: boolean;
  readonly res: http.ServerResponse;
}

export class FakeKubeApiServer {
  readonly requests: RecordedRequest[] = [];
  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly watchers = new Set<Watcher>();
  private readonly stalled = new Set<() => void>();
  private readonly objects = new Map<string, EndpointSliceJson>();
  private readonly history: Change[] = [];
  private readonly failures: Record<RequestKind, number[]> = { list: [], watch: [] };
  private readonly stalls: Record<RequestKind, number> = { list: 0, watch: 0 };
  private rv = 1;
  private compactedRv = 0;
  private expiredAs: 'event' | 'status' = 'event';
  private muted = false;
  private dir = '';
  url = '';
  kubeconfigPath = '';

  private constructor() {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  static async start(): Promise<FakeKubeApiServer> {
    const fake = new FakeKubeApiServer();
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    const address = fake.server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    fake.url = `http://127.0.0.1:${address.port}`;
    fake.dir = await mkdtemp(path.join(tmpdir(), 'sluice-kube-'));
    fake.kubeconfigPath = path.join(fake.dir, 'kubeconfig');
    // JSON is YAML: no YAML writer needed.
    const kubeconfig = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: fake.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'fake', user: {} }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake' } }],
      'current-context': 'fake',
    };
    await writeFile(fake.kubeconfigPath, JSON.stringify(kubeconfig, null, 2));
    return fake;
  }

  /** Create or replace a slice (ADDED or MODIFIED to watchers). */
  apply(slice: EndpointSliceJson): void {
    const key = `${slice.metadata.namespace}/${slice.metadata.name}`;
    const after: EndpointSliceJson = structuredClone(slice);
    this.record(key, after);
  }

  /** Delete a slice (DELETED to watchers). */
  remove(namespace: string, name: string): void {
    this.record(`${namespace}/${name}`, undefined);
  }

  /** A BOOKMARK at the current version to every watch that asked for bookmarks. */
  bookmark(): void {
    const event = { type: 'BOOKMARK', object: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: String(this.rv) } } };
    for (const w of this.watchers) if (w.bookmarks) w.res.write(`${JSON.stringify(event)}\n`);
  }

  /**
   * Compact the history up to now; open watches learn it as described in the file comment.
   * `lost` makes changes that no watch is told about (compacted before it read them), so
   * only a re-list can see them.
   */
  expire(as: 'event' | 'status', lost: () => void = () => undefined): void {
    this.muted = true;
    try {
      lost();
    } finally {
      this.muted = false;
    }
    this.compactedRv = this.rv;
    this.expiredAs = as;
    for (const w of [...this.watchers]) {
      if (as === 'event') w.res.write(`${JSON.stringify({ type: 'ERROR', object: this.expiredStatus(this.compactedRv - 1) })}\n`);
      this.closeWatch(w);
    }
  }

  /** The next `times` requests of `kind` answer HTTP `status`. */
  failNext(kind: RequestKind, status: number, times = 1): void {
    for (let i = 0; i < times; i++) this.failures[kind].push(status);
  }

  /** The next request of `kind` gets no answer (not even headers) until `releaseStalled`. */
  stallNext(kind: RequestKind): void {
    this.stalls[kind]++;
  }

  /** Answer the stalled requests whose clients are still there, as if nothing had happened. */
  releaseStalled(): void {
    const stalled = [...this.stalled];
    this.stalled.clear();
    for (const answer of stalled) answer();
  }

  stalledRequests(): number {
    return this.stalled.size;
  }

  /** End every open watch cleanly (the server's watch timeout). */
  endWatches(): void {
    for (const w of [...this.watchers]) this.closeWatch(w);
  }

  /** Kill every open watch connection in the middle of an event. */
  cutWatches(): void {
    for (const w of [...this.watchers]) {
      this.watchers.delete(w);
      w.res.write('{"type":"MODIFIED","object":{"kind":"EndpointSl');
      w.res.socket?.destroy();
    }
  }

  openConnections(): number {
    return this.sockets.size;
  }

  openWatches(): number {
    return this.watchers.size;
  }

  count(kind: RequestKind): number {
    return this.requests.filter((r) => r.kind === kind).length;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.dir !== '') await rm(this.dir, { recursive: true, force: true });
  }

  private record(key: string, after: EndpointSliceJson | undefined): void {
    const before = this.objects.get(key);
    if (before === undefined && after === undefined) return;
    this.rv++;
    const stamped = after === undefined ? undefined : withVersion(after, this.rv);
    const change: Change = { rv: this.rv, before, after: stamped };
    if (stamped === undefined) this.objects.delete(key);
    else this.objects.set(key, stamped);
    this.history.push(change);
    if (!this.muted) for (const w of this.watchers) this.send(w, change);
  }

  private send(w: Watcher, change: Change): void {
    const event = watchEvent(w, change);
    if (event !== undefined) w.res.write(`${JSON.stringify(event)}\n`);
  }

  private closeWatch(w: Watcher): void {
    this.watchers.delete(w);
    w.res.end();
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const match = API_PATH.exec(url.pathname);
    if (req.method !== 'GET' || match === null) {
      status(res, 404, 'NotFound', `the server could not find the requested resource (${req.method} ${url.pathname})`);
      return;
    }
    const namespace = decodeURIComponent(match[1]!);
    const kind: RequestKind = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1' ? 'watch' : 'list';
    this.requests.push({ kind, namespace, query: url.searchParams, headers: req.headers });
    const selector = parseSelector(url.searchParams.get('labelSelector') ?? '');
    if (selector === undefined) {
      status(res, 400, 'BadRequest', `unable to parse requirement: ${url.searchParams.get('labelSelector')}`);
      return;
    }
    const failure = this.failures[kind].shift();
    if (failure !== undefined) {
      status(res, failure, failure === 500 ? 'InternalError' : 'Unknown', `simulated failure of the ${kind}`);
      return;
    }
    if (this.stalls[kind] > 0) {
      this.stalls[kind]--;
      const answer = (): void => {
        if (!res.destroyed) this.answer(kind, res, namespace, selector, url.searchParams);
      };
      this.stalled.add(answer);
      res.on('close', () => this.stalled.delete(answer));
      return;
    }
    this.answer(kind, res, namespace, selector, url.searchParams);
  }

  private answer(kind: RequestKind, res: http.ServerResponse, namespace: string, selector: (labels: Record<string, string>) => boolean, query: URLSearchParams): void {
    if (kind === 'list') this.list(res, namespace, selector);
    else this.watch(res, namespace, selector, query);
  }

  private list(res: http.ServerResponse, namespace: string, selector: (labels: Record<string, string>) => boolean): void {
    const items = [...this.objects.values()].filter((o) => o.metadata.namespace === namespace && selector(o.metadata.labels));
    const body = { kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: String(this.rv) }, items };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private watch(res: http.ServerResponse, namespace: string, selector: (labels: Record<string, string>) => boolean, query: URLSearchParams): void {
    const from = Number(query.get('resourceVersion') ?? '0');
    if (from !== 0 && from < this.compactedRv && this.expiredAs === 'status') {
      status(res, 410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    if (from !== 0 && from < this.compactedRv) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: this.expiredStatus(from) })}\n`);
      return;
    }
    const w: Watcher = { namespace, selector, bookmarks: query.get('allowWatchBookmarks') === 'true', res };
    for (const change of this.history) if (change.rv > from) this.send(w, change);
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
  }

  private expiredStatus(from: number): object {
    return statusObject(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`);
  }
}

function withVersion(slice: EndpointSliceJson, rv: number): EndpointSliceJson {
  return { ...slice, metadata: { ...slice.metadata, resourceVersion: String(rv) } };
}

/** The event one watcher sees for a change, or none when the slice is outside its view. */
function watchEvent(w: Watcher, change: Change): { type: string; object: EndpointSliceJson } | undefined {
  const visible = (o: EndpointSliceJson | undefined): o is EndpointSliceJson => o !== undefined && o.metadata.namespace === w.namespace && w.selector(o.metadata.labels);
  const was = visible(change.before);
  const is = visible(change.after);
  if (is) return { type: was ? 'MODIFIED' : 'ADDED', object: change.after };
  if (was) return { type: 'DELETED', object: withVersion(change.before, change.rv) };
  return undefined;
}

/** Equality-based selectors only (`a=b`, `a==b`, `a!=b`, comma-separated): what the source sends. */
function parseSelector(text: string): ((labels: Record<string, string>) => boolean) | undefined {
  const terms: ((labels: Record<string, string>) => boolean)[] = [];
  for (const part of text.split(',').filter((p) => p !== '')) {
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(part);
    if (m === null) return undefined;
    const [, key, op, value] = m as unknown as [string, string, string, string];
    terms.push(op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value);
  }
  return (labels) => terms.every((t) => t(labels));
}

function statusObject(code: number, reason: string, message: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function status(res: http.ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(statusObject(code, reason, message)));
}
