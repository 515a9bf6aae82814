/**
 * Memory per idle proxied connection: open N client connections through a freshly started
 * proxy, let each carry one HTTP request and its answer (so every proxy has really
 * connected the backend and passed bytes both ways), hold them all open and idle, and
 * divide the growth of the proxy's resident memory by N.
 *
 * A fresh process per measurement: a proxy that already served the throughput workloads
 * keeps freed memory in its pools or heap and would hide what connections cost.
 */
import net from 'node:net';
import { rssKiB } from '../lib/proc-stats.ts';
import { delay } from '../lib/procs.ts';
import type { Target } from '../peers/target.ts';
import type { Metrics } from './http-load.ts';

const REQUEST = 'GET / HTTP/1.1\r\nHost: bench\r\n\r\n';
/** The backend's answer ends with its body; seeing it means the exchange completed. */
const ANSWER_END = '\r\n\r\nok\n';
const OPEN_IN_PARALLEL = 200;
const EXCHANGE_TIMEOUT_MS = 20_000;
const WARM_UP_CONNECTIONS = 100;
const SETTLE_MAX_MS = 10_000;
const SETTLE_STEP_MS = 500;

/** Open one connection, exchange one request, resolve with the still-open socket. */
function openExchanged(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let received = '';
    const fail = (error: Error): void => {
      socket.destroy();
      reject(error);
    };
    socket.setTimeout(EXCHANGE_TIMEOUT_MS, () => fail(new Error('no answer in time')));
    socket.once('error', fail);
    socket.once('close', () => fail(new Error('closed before the answer')));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (!received.endsWith(ANSWER_END)) return;
      socket.removeAllListeners();
      socket.setTimeout(0);
      // Later errors (the proxy going away) must not crash the bench.
      socket.on('error', () => undefined);
      socket.pause();
      resolve(socket);
    });
    socket.once('connect', () => socket.write(REQUEST));
  });
}

async function openMany(port: number, count: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  let failures = 0;
  let firstError = '';
  for (let start = 0; start < count; start += OPEN_IN_PARALLEL) {
    const batch = Math.min(OPEN_IN_PARALLEL, count - start);
    const results = await Promise.allSettled(Array.from({ length: batch }, async () => openExchanged(port)));
    for (const r of results) {
      if (r.status === 'fulfilled') sockets.push(r.value);
      else {
        failures++;
        firstError ||= String(r.reason);
      }
    }
  }
  if (failures > 0) {
    closeAll(sockets);
    throw new Error(`${failures} of ${count} connections failed (first: ${firstError})`);
  }
  return sockets;
}

function closeAll(sockets: readonly net.Socket[]): void {
  for (const s of sockets) s.destroy();
}

/** RSS once it stopped moving (allocators and GC settle a moment after the last connect). */
async function settledRss(pid: number): Promise<number> {
  let last = rssKiB(pid);
  for (let waited = 0; waited < SETTLE_MAX_MS; waited += SETTLE_STEP_MS) {
    await delay(SETTLE_STEP_MS);
    const now = rssKiB(pid);
    if (Math.abs(now - last) <= last * 0.002) return now;
    last = now;
  }
  return last;
}

export async function runIdleMemory(target: Target, connections: number): Promise<Metrics> {
  const pid = target.pid;
  if (pid === undefined) throw new Error('idle memory needs a proxy process');
  closeAll(await openMany(target.httpPort, WARM_UP_CONNECTIONS));
  const before = await settledRss(pid);
  const sockets = await openMany(target.httpPort, connections);
  try {
    const after = await settledRss(pid);
    return {
      kib_per_conn: (after - before) / connections,
      rss_before_mib: before / 1024,
      rss_after_mib: after / 1024,
      connections,
    };
  } finally {
    closeAll(sockets);
  }
}
