import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { roundTrip } from '../helpers/client.ts';
import { runCli, tcpConfig, writeConfig } from '../helpers/daemon.ts';
import { freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface ReadyProbe {
  readonly status: number;
  readonly body: { status?: string; waiting_for?: string[] };
}

async function probeReady(adminPort: number): Promise<ReadyProbe | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
    return { status: response.status, body: (await response.json()) as ReadyProbe['body'] };
  } catch {
    return undefined; // the admin port is not open yet
  }
}

async function serves(port: number): Promise<boolean> {
  try {
    return (await roundTrip(port, Buffer.from('ping'), 5_000)).toString() === 'ping';
  } catch {
    return false;
  }
}

describe('/readyz from start-up', () => {
  it('answers 200 only once every worker serves: no connection started after the first 200 fails', async () => {
    const backend = await startBackend('echo');
    cleanups.push(async () => backend.close());
    const [listenPort, adminPort] = (await freePorts(2)) as [number, number];
    const child = runCli(['run', '--config', writeConfig(tcpConfig({ listenPort, adminPort, backends: [backend.address], workers: 2 }))]);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    cleanups.push(async () => {
      child.kill('SIGKILL');
      await exited;
    });

    const notReady: ReadyProbe[] = [];
    let readyAt = -1;
    let probes = 0;
    // Polled as fast as answers come back: the bound is a count, not a time.
    while (readyAt < 0 && probes++ < 20_000) {
      const probe = await probeReady(adminPort);
      if (probe === undefined) continue;
      if (probe.status === 200) readyAt = probes;
      else notReady.push(probe);
    }
    expect(readyAt).toBeGreaterThan(0);
    for (const probe of notReady) expect(probe.body).toEqual({ status: 'starting', waiting_for: ['listeners'] });

    // Everything started after the first 200 must be served, on every worker's socket.
    const results = await Promise.all(Array.from({ length: 40 }, async () => serves(listenPort)));
    expect(results.filter((ok) => !ok)).toHaveLength(0);
  });
});
