/**
 * Admin change → first routed connection: how long after `POST /backends` a new backend
 * receives connections, through the real admin API and the real data plane.
 *
 * The listener's cluster starts empty, so a connection either reaches the one backend the
 * bench added or is refused at once; nothing else can answer. Per change, probes go out in
 * parallel batches of several connections each (their different source ports spread them
 * over the workers' SO_REUSEPORT sockets) until a whole batch is answered: "first" is the
 * first answered probe, "all" the batch that proves every worker routes to it. Then the
 * backend is deleted and the bench waits for refusals before the next change, with a fresh
 * address each time so no change depends on the previous removal finishing.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { freePorts } from '../lib/procs.ts';
import type { ProcessGroup } from '../lib/procs.ts';
import { percentile } from '../lib/stats.ts';
import { startSluice, type SluiceInstance } from '../peers/sluice.ts';
import type { Metrics } from './http-load.ts';

const REQUEST = 'GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n';
const PROBE_TIMEOUT_MS = 2_000;
const CHANGE_DEADLINE_MS = 5_000;
const REMOVAL_DEADLINE_MS = 10_000;
const CLUSTER = 'changes';

export interface AdminChangeSetup {
  readonly instance: SluiceInstance;
  readonly listenPort: number;
  readonly workers: number;
}

export async function startAdminChangeTarget(group: ProcessGroup, dir: string, workers: number): Promise<AdminChangeSetup> {
  const [adminPort = 0, listenPort = 0] = await freePorts(2);
  const instance = await startSluice(group, dir, 'sluice-admin-change', {
    workers,
    adminPort,
    listeners: [{ name: 'changes', port: listenPort, cluster: CLUSTER }],
    clusters: [{ name: CLUSTER, backends: [] }],
  });
  return { instance, listenPort, workers };
}

/** Resolves with the time it was answered, or undefined when refused or cut. */
function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let received = '';
    const done = (at: number | undefined): void => {
      socket.destroy();
      resolve(at);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(undefined));
    socket.once('error', () => done(undefined));
    socket.once('close', () => done(undefined));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.startsWith('HTTP/1.1 200')) done(performance.now());
    });
    socket.once('connect', () => socket.write(REQUEST));
  });
}

async function probeBatch(port: number, size: number): Promise<(number | undefined)[]> {
  return Promise.all(Array.from({ length: size }, async () => probe(port)));
}

export type AdminChangeResult = { readonly metrics: Metrics } | { readonly pending: string };

export async function runAdminChanges(setup: AdminChangeSetup, backendPort: number, changes: number): Promise<AdminChangeResult> {
  const batch = Math.max(4, setup.workers * 4);
  const first: number[] = [];
  const all: number[] = [];
  for (let i = 0; i < changes; i++) {
    const address = `127.2.${Math.floor(i / 250)}.${(i % 250) + 1}:${backendPort}`;
    const startedAt = performance.now();
    const added = await fetch(`${setup.instance.adminUrl}/backends`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cluster: CLUSTER, address }),
    });
    const body = await added.text();
    if (added.status === 404 && i === 0) return { pending: `POST /backends answered 404 (${body.slice(0, 120)})` };
    if (added.status !== 201) throw new Error(`POST /backends ${address}: ${added.status} ${body}`);

    let firstAt: number | undefined;
    for (;;) {
      const answers = await probeBatch(setup.listenPort, batch);
      for (const at of answers) if (at !== undefined && (firstAt === undefined || at < firstAt)) firstAt = at;
      if (answers.every((a) => a !== undefined)) {
        all.push(performance.now() - startedAt);
        break;
      }
      if (performance.now() - startedAt > CHANGE_DEADLINE_MS) throw new Error(`${address} not routed by every worker within ${CHANGE_DEADLINE_MS} ms`);
    }
    if (firstAt !== undefined) first.push(firstAt - startedAt);

    const removed = await fetch(`${setup.instance.adminUrl}/backends/${encodeURIComponent(`${CLUSTER}:${address}`)}`, { method: 'DELETE' });
    await removed.text();
    if (removed.status >= 300) throw new Error(`DELETE /backends/${CLUSTER}:${address}: ${removed.status}`);
    const removeStarted = performance.now();
    for (;;) {
      const answers = await probeBatch(setup.listenPort, batch);
      if (answers.every((a) => a === undefined)) break;
      if (performance.now() - removeStarted > REMOVAL_DEADLINE_MS) throw new Error(`${address} still routed ${REMOVAL_DEADLINE_MS} ms after DELETE`);
    }
  }
  return {
    metrics: {
      first_p50_ms: percentile(first, 50),
      first_p99_ms: percentile(first, 99),
      all_p50_ms: percentile(all, 50),
      all_p99_ms: percentile(all, 99),
      changes,
    },
  };
}
