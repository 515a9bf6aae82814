/**
 * accept_proxy with `trusted`: a PROXY header names whatever client its sender likes, so
 * only the balancers in front may send one. A peer outside `trusted` is refused before its
 * header is read (counted as proxy_untrusted), so it cannot slip past the acl by naming an
 * allowed address; a trusted peer's header is honoured, and the acl judges the client it names.
 * Peers are told apart by source address: 127.0.0.2 is the trusted balancer, 127.0.0.3 is not.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../helpers/daemon.ts';
import { exchange, listenerStats, startRecordingBackend, type RecordingBackend } from '../helpers/edge.ts';
import { freePorts } from '../helpers/ports.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const TRUSTED_PEER = '127.0.0.2';
const UNTRUSTED_PEER = '127.0.0.3';

async function setup(): Promise<{ daemon: Daemon; port: number; backend: RecordingBackend }> {
  // The backend answers once the client ended: its bytes are then all there to read.
  const backend = await startRecordingBackend(Number.MAX_SAFE_INTEGER);
  cleanups.push(async () => backend.close());
  const [port, adminPort] = await freePorts(2);
  const daemon = await startDaemon(
    `workers: 1
admin:
  listen: 127.0.0.1:${adminPort}
listeners:
  - name: edge
    listen: 127.0.0.1:${port}
    cluster: web
    accept_proxy: {trusted: [${TRUSTED_PEER}/32]}
    acl: {allow: [8.8.8.0/24]}
clusters:
  - name: web
    health_check: {type: none}
    send_proxy: v1
    backends:
      - { address: ${backend.address} }
`,
    adminPort!,
  );
  cleanups.push(async () => daemon.stop('SIGKILL'));
  return { daemon, port: port!, backend };
}

function proxied(client: string, port: number, body: string): Buffer {
  return Buffer.from(`PROXY TCP4 ${client} 192.0.2.1 40000 ${port}\r\n${body}`);
}

describe('accept_proxy: {trusted}', () => {
  it('refuses a peer outside trusted, even with a header naming a client the acl allows', async () => {
    const { daemon, port, backend } = await setup();

    const { reply } = await exchange(port, UNTRUSTED_PEER, proxied('8.8.8.8', port, 'hello'));

    expect(reply.length).toBe(0);
    const stats = await listenerStats(daemon.adminUrl, 'edge');
    expect(stats.refused_total).toMatchObject({ proxy_untrusted: 1, acl: 0, proxy_header: 0 });
    expect(stats.accepted_total).toBe(1);
    expect(backend.accepted).toBe(0);
  });

  it('honours a trusted peer header: the acl judges the client it names, and the backend is told that client', async () => {
    const { daemon, port, backend } = await setup();

    const allowed = await exchange(port, TRUSTED_PEER, proxied('8.8.8.8', port, 'hello'));
    const denied = await exchange(port, TRUSTED_PEER, proxied('9.9.9.9', port, 'hello'));

    expect(allowed.reply.toString()).toBe('ok');
    expect(backend.received.map((b) => b.toString())).toEqual([`PROXY TCP4 8.8.8.8 192.0.2.1 40000 ${port}\r\nhello`]);
    expect(denied.reply.length).toBe(0);
    const stats = await listenerStats(daemon.adminUrl, 'edge');
    expect(stats.refused_total).toMatchObject({ proxy_untrusted: 0, acl: 1 });
    expect(backend.accepted).toBe(1);
  });
});
