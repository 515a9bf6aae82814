/**
 * Admin change → first routed connection: how long after an operator's change a new
 * backend receives connections, through the real admin API and the real data plane.
 *
 * The listener's cluster starts empty, so a connection either reaches the one backend the
 * bench added or is refused at once; nothing else can answer. Per change: the time until
 * the admin API answers (it answers once the new snapshot is published), then probes in
 * parallel batches of several connections each (their different source ports spread them
 * over the workers' SO_REUSEPORT sockets) until a whole batch is answered ("all workers").
 * How often the very first batch after the answer was already routed everywhere says
 * whether the data plane saw the change at its next accept; one batch's own duration
 * (measured once the change settled) is the resolution of the "all workers" time. Then the
 * backend is removed and the bench waits for refusals before the next change, with a fresh
 * address each time so no change depends on the previous removal finishing.
 *
 * The change is `POST /backends` (removal: `DELETE /backends/:id`). While the admin API has
 * no such route, the same change is made by rewriting the config file and calling
 * `POST /config/reload`, and the result says so: that path parses and diffs the whole
 * config too, so it bounds the POST /backends latency from above.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { freePorts } from '../lib/procs.ts';
import type { ProcessGroup } from '../lib/procs.ts';
import { percentile } from '../lib/stats.ts';
import { writeFileSync } from 'node:fs';
import { sluiceConfig, startSluice, type SluiceInstance } from '../peers/sluice.ts';
import type { Metrics } from './http-load.ts';

const REQUEST = 'GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n';
const PROBE_TIMEOUT_MS = 2_000;
const CHANGE_DEADLINE_MS = 5_000;
const REMOVAL_DEADLINE_MS = 10_000;
const CLUSTER = 'changes';
const WARMUP_CHANGES = 20;

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

export type AdminChangeResult = { readonly metrics: Metrics; readonly method: 'POST /backends' | 'POST /config/reload' };

type ChangeMethod = AdminChangeResult['method'];

async function answer(response: Response, what: string, ok: (status: number) => boolean): Promise<void> {
  const body = await response.text();
  if (!ok(response.status)) throw new Error(`${what}: ${response.status} ${body.slice(0, 300)}`);
}

/** Add or remove (address undefined) the cluster's one backend, by the given method. */
async function change(setup: AdminChangeSetup, method: ChangeMethod, address: string | undefined, previous: string | undefined): Promise<void> {
  const admin = setup.instance.adminUrl;
  if (method === 'POST /backends') {
    if (address !== undefined) {
      const added = await fetch(`${admin}/backends`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ cluster: CLUSTER, address }),
      });
      await answer(added, `POST /backends ${address}`, (s) => s === 201);
    } else if (previous !== undefined) {
      const removed = await fetch(`${admin}/backends/${encodeURIComponent(`${CLUSTER}:${previous}`)}`, { method: 'DELETE' });
      await answer(removed, `DELETE /backends/${CLUSTER}:${previous}`, (s) => s < 300);
    }
    return;
  }
  const { setup: config } = setup.instance;
  const clusters = config.clusters.map((c) => (c.name === CLUSTER ? { name: c.name, backends: address === undefined ? [] : [address] } : c));
  writeFileSync(setup.instance.configFile, sluiceConfig({ ...config, clusters }));
  const reloaded = await fetch(`${admin}/config/reload`, { method: 'POST' });
  await answer(reloaded, 'POST /config/reload', (s) => s === 200);
}

/**
 * One admin request that changes nothing (GET /healthz): the HTTP round trip's own time on
 * this machine, the floor under every "answer" time.
 */
async function noopRequestMs(setup: AdminChangeSetup): Promise<number> {
  const startedAt = performance.now();
  const response = await fetch(`${setup.instance.adminUrl}/healthz`);
  await answer(response, 'GET /healthz', (s) => s === 200);
  return performance.now() - startedAt;
}

/** POST /backends when the admin API has it (a GET answers 200 there), else reload. */
async function pickMethod(setup: AdminChangeSetup): Promise<ChangeMethod> {
  const probe = await fetch(`${setup.instance.adminUrl}/backends`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  await probe.text();
  // A missing route is 404; an existing one rejects the empty body with 400.
  return probe.status === 404 ? 'POST /config/reload' : 'POST /backends';
}

export async function runAdminChanges(setup: AdminChangeSetup, backendPort: number, changes: number): Promise<AdminChangeResult> {
  const method = await pickMethod(setup);
  const batch = Math.max(4, setup.workers * 4);
  const answered: number[] = [];
  const all: number[] = [];
  const steadyBatch: number[] = [];
  const noop: number[] = [];
  let firstBatchRouted = 0;
  // A daemon that runs for months is warm: the first changes (JIT, first allocations of
  // each path) are not what an operator sees, so they are made but not timed.
  for (let i = 0; i < WARMUP_CHANGES; i++) {
    const address = `127.3.0.${i + 1}:${backendPort}`;
    await change(setup, method, address, undefined);
    await change(setup, method, undefined, address);
  }
  for (let i = 0; i < changes; i++) {
    const address = `127.2.${Math.floor(i / 250)}.${(i % 250) + 1}:${backendPort}`;
    noop.push(await noopRequestMs(setup));
    const startedAt = performance.now();
    await change(setup, method, address, undefined);
    answered.push(performance.now() - startedAt);
    for (let batchNumber = 1; ; batchNumber++) {
      const answers = await probeBatch(setup.listenPort, batch);
      if (answers.every((a) => a !== undefined)) {
        all.push(performance.now() - startedAt);
        if (batchNumber === 1) firstBatchRouted++;
        break;
      }
      if (performance.now() - startedAt > CHANGE_DEADLINE_MS) throw new Error(`${address} not routed by every worker within ${CHANGE_DEADLINE_MS} ms`);
    }
    // What one batch of probes costs once nothing changes: the resolution of the above.
    const batchStarted = performance.now();
    await probeBatch(setup.listenPort, batch);
    steadyBatch.push(performance.now() - batchStarted);

    await change(setup, method, undefined, address);
    const removeStarted = performance.now();
    for (;;) {
      const answers = await probeBatch(setup.listenPort, batch);
      if (answers.every((a) => a === undefined)) break;
      if (performance.now() - removeStarted > REMOVAL_DEADLINE_MS) throw new Error(`${address} still routed ${REMOVAL_DEADLINE_MS} ms after its removal`);
    }
  }
  return {
    method,
    metrics: {
      all_p50_ms: percentile(all, 50),
      all_p99_ms: percentile(all, 99),
      answer_p50_ms: percentile(answered, 50),
      answer_p99_ms: percentile(answered, 99),
      noop_p50_ms: percentile(noop, 50),
      noop_p99_ms: percentile(noop, 99),
      first_batch_routed_pct: (firstBatchRouted / changes) * 100,
      probe_batch_p50_ms: percentile(steadyBatch, 50),
      changes,
    },
  };
}
