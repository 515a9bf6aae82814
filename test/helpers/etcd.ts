/**
 * A real etcd (the `etcd` binary) on free loopback ports with a temp data dir, for registry
 * tests. Readiness is the server answering a status call, polled a bounded number of
 * times; stopping is by PID. `restart()` reuses the data dir and ports, like an operator
 * restarting a crashed member.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Etcd3 } from 'etcd3';
import { connectEtcd } from '../../src/controlplane/registry/etcd-client.ts';
import { freePorts } from './ports.ts';

export interface EtcdServer {
  readonly endpoint: string;
  readonly dataDir: string;
  pid(): number | undefined;
  /** SIGKILL the server (a crash: no clean shutdown) and wait for it to exit. */
  kill(): Promise<void>;
  /** Start it again on the same data dir and ports; resolves once it answers. */
  restart(): Promise<void>;
  /** Stop it and remove the data dir. */
  stop(): Promise<void>;
  /** A client for the test's own reads and writes; closed by stop(). */
  client(): Etcd3;
}

const READY_POLLS = 100;
const READY_POLL_MS = 100;

/** PEM files: the server's certificate and key, and the CA that client certificates must chain to. */
export interface EtcdTlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** With `tls`, clients connect over https and must present a certificate from `tls.ca`. */
export async function startEtcd(options: { readonly tls?: EtcdTlsFiles } = {}): Promise<EtcdServer> {
  const { tls } = options;
  const [clientPort, peerPort] = await freePorts(2);
  const endpoint = `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const dataDir = mkdtempSync(path.join(tmpdir(), 'sluice-etcd-'));
  const name = 'test';
  let child: ChildProcess | undefined;
  let output = '';
  const clients: Etcd3[] = [];

  const launch = async (): Promise<void> => {
    output = '';
    const started = spawn(
      'etcd',
      [
        `--name=${name}`,
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${endpoint}`,
        `--advertise-client-urls=${endpoint}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=${name}=${peer}`,
        '--initial-cluster-state=new',
        ...(tls === undefined ? [] : [`--cert-file=${tls.cert}`, `--key-file=${tls.key}`, `--trusted-ca-file=${tls.ca}`, '--client-cert-auth']),
        '--logger=zap',
        '--log-level=error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    started.stderr.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
    child = started;
    await waitReady(endpoint, tls, started, () => output);
  };

  const exit = async (signal: NodeJS.Signals): Promise<void> => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill(signal);
    await exited;
  };

  await launch();
  return {
    endpoint,
    dataDir,
    pid: () => child?.pid,
    kill: () => exit('SIGKILL'),
    restart: launch,
    stop: async () => {
      for (const c of clients) c.close();
      await exit('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
    },
    client: () => {
      const c = connectEtcd({ endpoints: [endpoint], prefix: '/', required: false, ...(tls === undefined ? {} : { tls }) }).client;
      clients.push(c);
      return c;
    },
  };
}

async function waitReady(endpoint: string, tls: EtcdTlsFiles | undefined, child: ChildProcess, output: () => string): Promise<void> {
  // The registry's own fault handling: etcd3's default circuit breaker would refuse calls
  // for 5 s after the first failed polls of a server that is still starting.
  // With tls, the server's own certificate doubles as the probe's client certificate.
  const probe = connectEtcd({ endpoints: [endpoint], prefix: '/', required: false, ...(tls === undefined ? {} : { tls }) }, {}, 1000).client;
  try {
    for (let i = 0; i < READY_POLLS; i++) {
      if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}: ${output()}`);
      try {
        await probe.maintenance.status();
        return;
      } catch {
        await delay(READY_POLL_MS);
      }
    }
    throw new Error(`etcd at ${endpoint} not ready after ${READY_POLLS} polls: ${output()}`);
  } finally {
    probe.close();
  }
}
