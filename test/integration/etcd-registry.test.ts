/**
 * The registry core against a real etcd (test/helpers/etcd.ts): watch loops, guarded
 * writes, leases, outages and compaction. Each test works under its own prefix.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectEtcd, type EtcdConnection } from '../../src/controlplane/registry/etcd-client.ts';
import { RegistryError } from '../../src/controlplane/registry/errors.ts';
import { fleetFromState, FleetMember, readFleet, snapshotHash } from '../../src/controlplane/registry/fleet.ts';
import { formatKey, type RegistryEntry } from '../../src/controlplane/registry/keys.ts';
import { register, runRegistration } from '../../src/controlplane/registry/registration.ts';
import { EventEmitter } from 'node:events';
import type { RegistryChange } from '../../src/controlplane/registry/registry-state.ts';
import { WatchLoop, type RegistryLog, type WatchLoopOptions } from '../../src/controlplane/registry/watch-loop.ts';
import { RegistryWriter } from '../../src/controlplane/registry/writes.ts';
import { eventually } from '../helpers/client.ts';
import { startEtcd, type EtcdServer } from '../helpers/etcd.ts';
import { runCli } from '../helpers/daemon.ts';

let etcd: EtcdServer;
const cleanups: (() => Promise<void> | void)[] = [];
let prefixCount = 0;

beforeAll(async () => {
  etcd = await startEtcd();
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  await etcd.stop();
});

interface LogRecord {
  readonly level: 'info' | 'warn';
  readonly msg: string;
  readonly [field: string]: unknown;
}

function recorder(): RegistryLog & { readonly lines: LogRecord[] } {
  const lines: LogRecord[] = [];
  return {
    lines,
    info: (fields, msg) => lines.push({ ...fields, level: 'info', msg }),
    warn: (fields, msg) => lines.push({ ...fields, level: 'warn', msg }),
  };
}

function freshPrefix(): string {
  return `/sluice-test-${process.pid}-${++prefixCount}/`;
}

/** A connection as the daemon makes it (fail-fast fault handling), closed after the test. */
function connection(prefix: string): EtcdConnection {
  const conn = connectEtcd({ endpoints: [etcd.endpoint], prefix, instance: 'test', required: false }, {}, 1000);
  cleanups.push(() => conn.client.close());
  return conn;
}

interface Watching {
  readonly loop: WatchLoop;
  readonly deliveries: { changes: readonly RegistryChange[]; revision: number }[];
  readonly log: ReturnType<typeof recorder>;
  readonly writer: RegistryWriter;
  readonly conn: EtcdConnection;
  /** The applied key -> value text. */
  applied(): Map<string, string>;
}

async function watching(prefix: string, options: Partial<WatchLoopOptions> = {}): Promise<Watching> {
  const conn = connection(prefix);
  const log = recorder();
  const deliveries: Watching['deliveries'] = [];
  const loop = new WatchLoop({
    client: conn.client,
    prefix,
    describe: conn.describe,
    log,
    onChanges: (changes, revision) => deliveries.push({ changes, revision }),
    retryMaxMs: 300,
    ...options,
  });
  cleanups.push(() => loop.close());
  loop.start();
  await loop.synced;
  const writer = new RegistryWriter({ client: conn.client, prefix, describe: conn.describe, health: loop });
  const applied = (): Map<string, string> => new Map([...loop.state().applied].map(([k, v]) => [k, v.text]));
  return { loop, deliveries, log, writer, conn, applied };
}

/** Everything under `prefix` as etcd holds it now. */
async function etcdHolds(prefix: string): Promise<Map<string, string>> {
  return new Map(Object.entries(await etcd.client().getAll().prefix(prefix).strings()));
}

/** eventually() for a value read without I/O (the loop's own state); fails the test on a timeout. */
async function until<T>(read: () => T, done: (value: T) => boolean, timeoutMs?: number): Promise<T> {
  const value = await eventually(() => Promise.resolve(read()), done, timeoutMs);
  if (!done(value)) throw new Error(`condition not met in time; last value: ${JSON.stringify(value instanceof Map ? [...value] : value)}`);
  return value;
}

const backend = (cluster: string, address: string, weight = 1): RegistryEntry => ({ key: { kind: 'backend', cluster, address }, value: { weight } });
const summary = (changes: readonly RegistryChange[]): string[] =>
  changes.map((c) => (c.type === 'put' ? `put ${JSON.stringify(c.entry)}` : `delete ${JSON.stringify(c.key)}`));

describe('the registry watch loop against a real etcd', () => {
  it('two watchers see the same changes in the same order, and the writer applies only from its watch', async () => {
    const prefix = freshPrefix();
    const a = await watching(prefix);
    const b = await watching(prefix);
    const steps: (() => Promise<unknown>)[] = [
      () => a.writer.put(backend('api', '10.0.0.1:80'), 0),
      () => b.writer.put({ key: { kind: 'override', cluster: 'api', address: '10.0.0.1:80' }, value: { drained: true } }, 0),
      () => a.writer.put({ key: { kind: 'routes', listener: 'web' }, value: { routes: [{ cluster: 'api', weight: 1 }] } }, 0),
      () => b.writer.delete({ kind: 'backend', cluster: 'api', address: '10.0.0.1:80' }, a.loop.state().applied.get(`${prefix}clusters/api/backends/10.0.0.1:80`)?.modRevision ?? -1),
    ];
    for (const step of steps) {
      const result = (await step()) as { ok: boolean; revision: number };
      expect(result.ok).toBe(true);
      // The writer's own state moves only when its watch delivers the write.
      await until(() => [a.loop.status().revision, b.loop.status().revision], (r) => r.every((rev) => rev >= result.revision));
    }
    const seenA = a.deliveries.flatMap((d) => summary(d.changes));
    const seenB = b.deliveries.flatMap((d) => summary(d.changes));
    expect(seenA).toHaveLength(4);
    expect(seenB).toEqual(seenA);
    expect(a.applied()).toEqual(await etcdHolds(prefix));
    expect(b.applied()).toEqual(a.applied());
  });

  it('a burst of 200 puts is delivered in a few coalesced batches and ends identical to etcd', async () => {
    const prefix = freshPrefix();
    const w = await watching(prefix, { coalesceMs: 25 });
    const client = etcd.client();
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => client.put(formatKey(prefix, { kind: 'backend', cluster: 'bulk', address: `10.1.${i >> 8}.${i & 255}:80` })).value(JSON.stringify({ weight: (i % 7) + 1 }))),
    );
    const last = Math.max(...results.map((r) => Number(r.header.revision)));
    await until(() => w.loop.status().revision, (rev) => rev >= last);
    const delivered = w.deliveries.reduce((n, d) => n + d.changes.length, 0);
    console.info(`200 puts -> ${w.deliveries.length} deliveries`);
    expect(delivered).toBe(200);
    expect(w.deliveries.length).toBeLessThan(40);
    expect(w.applied()).toEqual(await etcdHolds(prefix));
  });

  it('two writers racing on one key: one wins, the other gets a conflict with the current value, and its retry loses nothing', async () => {
    const prefix = freshPrefix();
    const a = await watching(prefix);
    const b = await watching(prefix);
    const key = { kind: 'override', cluster: 'api', address: '10.0.0.2:80' } as const;
    const full = formatKey(prefix, key);
    const first = await a.writer.put({ key, value: { weight: 3 } }, 0);
    if (!first.ok) throw new Error('setup write failed');
    await until(() => [a.loop.status().revision, b.loop.status().revision], (r) => r.every((rev) => rev >= first.revision));
    const base = a.loop.state().applied.get(full)!.modRevision;
    expect(b.loop.state().applied.get(full)!.modRevision).toBe(base);

    const [ra, rb] = await Promise.all([
      a.writer.put({ key, value: { weight: 3, drained: true } }, base),
      b.writer.put({ key, value: { weight: 5 } }, base),
    ]);
    expect([ra.ok, rb.ok].sort()).toEqual([false, true]);
    const loser = ra.ok ? rb : ra;
    const winnerValue = ra.ok ? { weight: 3, drained: true } : { weight: 5 };
    if (loser.ok) throw new Error('unreachable');
    expect(loser.error).toBe('SLUICE_REGISTRY_CONFLICT');
    expect(loser.current.text).not.toBeNull();
    expect(JSON.parse(loser.current.text!)).toEqual(winnerValue);
    expect(loser.current.modRevision).toBeGreaterThan(base);

    // The loser merges its intent into the current value and retries against its revision.
    const merged = { weight: 5, drained: true };
    const retry = await (ra.ok ? b : a).writer.put({ key, value: merged }, loser.current.modRevision);
    expect(retry.ok).toBe(true);
    expect(JSON.parse((await etcdHolds(prefix)).get(full)!)).toEqual(merged);

    // A stale expectation after that conflicts too (nothing is overwritten blindly).
    const stale = await a.writer.delete(key, base);
    expect(stale.ok).toBe(false);
  });

  it('a value another tool wrote badly is logged with its key and ignored; the key keeps its last good value and nothing else is lost', async () => {
    const prefix = freshPrefix();
    const w = await watching(prefix);
    const client = etcd.client();
    const good = formatKey(prefix, { kind: 'backend', cluster: 'api', address: '10.0.0.3:80' });
    const bad = formatKey(prefix, { kind: 'backend', cluster: 'api', address: '10.0.0.4:80' });
    const other = formatKey(prefix, { kind: 'backend', cluster: 'api', address: '10.0.0.5:80' });
    await client.put(good).value('{"weight":2}');
    await until(() => w.applied().has(good), Boolean);
    await client.put(good).value('{"weight":"heavy"}');
    await client.put(bad).value('not json');
    await client.put(`${prefix}clusters/api/strange/10.0.0.6:80`).value('{}');
    const last = await client.put(other).value('{"weight":4}');
    await until(() => w.loop.status().revision, (rev) => rev >= Number(last.header.revision));

    expect(w.applied().get(good)).toBe('{"weight":2}');
    expect(w.applied().has(bad)).toBe(false);
    expect(w.applied().get(other)).toBe('{"weight":4}');
    const ignored = w.log.lines.filter((l) => l.msg === 'registry value ignored');
    expect(ignored.map((l) => l.key).sort()).toEqual([`${prefix}clusters/api/strange/10.0.0.6:80`, bad, good].sort());
    expect(ignored.find((l) => l.key === good)?.problem).toMatch(/weight/);
    expect(ignored.find((l) => l.key === bad)?.problem).toMatch(/not JSON/);
  });

  it('a compaction past the watch start makes the loop re-read, with synthetic deletes, and converge', async () => {
    const prefix = freshPrefix();
    const client = etcd.client();
    const keep = formatKey(prefix, { kind: 'backend', cluster: 'api', address: '10.0.1.1:80' });
    const gone = formatKey(prefix, { kind: 'backend', cluster: 'api', address: '10.0.1.2:80' });
    const added = formatKey(prefix, { kind: 'backend', cluster: 'api', address: '10.0.1.3:80' });
    await client.put(keep).value('{"weight":1}');
    await client.put(gone).value('{"weight":1}');
    let holdFirst = true;
    const w = await watching(prefix, {
      // Between the first read and its watch, the store moves on and is compacted past the
      // revision the watch will ask for.
      beforeWatch: async () => {
        if (!holdFirst) return;
        holdFirst = false;
        await client.delete().key(gone);
        await client.put(keep).value('{"weight":9}');
        const last = await client.put(added).value('{"weight":2}');
        await client.kv.compact({ revision: last.header.revision, physical: true });
      },
    });
    expect(w.applied().has(gone)).toBe(true);
    const firstRead = w.deliveries[0]!.revision;
    await until(() => w.applied(), (applied) => !applied.has(gone) && applied.has(added));
    expect(w.applied()).toEqual(await etcdHolds(prefix));
    const changes = w.deliveries.slice(1).flatMap((d) => d.changes);
    expect(changes.filter((c) => c.type === 'delete').map((c) => formatKey(prefix, c.key))).toEqual([gone]);
    // etcd's cancel response carries the compact revision but no reason text; the watch's
    // start revision is what shows why.
    expect(w.log.lines.filter((l) => l.level === 'warn').map((l) => [l.msg, l.from_revision])).toEqual([['registry watch canceled by etcd; re-reading', firstRead + 1]]);
    expect(w.loop.status().up).toBe(true);
  });

  it('a leased registration: revoked on stop, expiring after its ttl when abandoned, while the operator override stays', async () => {
    const prefix = freshPrefix();
    const w = await watching(prefix);
    const conn = connection(prefix);
    const log = recorder();
    const stopped = await register(conn, { cluster: 'api', address: '10.0.2.1:80', weight: 2, ttlSeconds: 2 }, log);
    const abandoned = await register(conn, { cluster: 'api', address: '10.0.2.2:80', weight: 1, ttlSeconds: 2 }, log);
    cleanups.push(() => stopped.stop(), () => abandoned.stop());
    const override = await w.writer.put({ key: { kind: 'override', cluster: 'api', address: '10.0.2.2:80' }, value: { drained: true } }, 0);
    expect(override.ok).toBe(true);
    await until(() => w.applied(), (a) => a.has(stopped.key) && a.has(abandoned.key) && a.size === 3);
    expect(w.applied().get(stopped.key)).toBe('{"weight":2}');

    await stopped.stop();
    await until(() => w.applied().has(stopped.key), (has) => !has);
    abandoned.abandon();
    // The lease outlives the last keepalive by up to the ttl; wait on the delete event itself.
    await until(() => w.applied().has(abandoned.key), (has) => !has, 10_000);
    const deletes = w.deliveries.flatMap((d) => d.changes).filter((c) => c.type === 'delete');
    expect(deletes.map((c) => formatKey(prefix, c.key))).toEqual([stopped.key, abandoned.key]);
    expect([...w.applied().keys()]).toEqual([formatKey(prefix, { kind: 'override', cluster: 'api', address: '10.0.2.2:80' })]);
  });

  it('sluice ctl register: registered until SIGTERM, which deletes the key and exits 0; etcd unreachable at the start exits 1', async () => {
    const prefix = freshPrefix();
    const w = await watching(prefix);
    const signals = new EventEmitter();
    const log = recorder();
    const key = formatKey(prefix, { kind: 'backend', cluster: 'api', address: '10.0.4.1:80' });
    const config = { endpoints: [etcd.endpoint], prefix, required: false };
    const exited = runRegistration(config, { cluster: 'api', address: '10.0.4.1:80', weight: 1, ttlSeconds: 5 }, { log, signals });
    await until(() => w.applied().get(key), (text) => text === '{"weight":1}');
    expect(signals.listenerCount('SIGTERM')).toBe(1);
    signals.emit('SIGTERM');
    expect(await exited).toBe(0);
    await until(() => w.applied().has(key), (has) => !has);
    expect(signals.listenerCount('SIGTERM')).toBe(0);
    expect(log.lines.map((l) => l.msg)).toEqual(['registered', 'deregistered']);

    const nowhere = { endpoints: ['http://127.0.0.1:1'], prefix, required: false };
    expect(await runRegistration(nowhere, { cluster: 'api', address: '10.0.4.1:80', weight: 1, ttlSeconds: 5 }, { log, signals })).toBe(1);
    expect(log.lines.at(-1)).toMatchObject({ msg: 'registration failed', error: expect.stringMatching(/^registry etcd http:\/\/127.0.0.1:1: cannot put /) as unknown });
  });

  it('the sluice ctl register process keeps the key until SIGTERM, then deletes it and exits 0', async () => {
    const prefix = freshPrefix();
    const w = await watching(prefix);
    const key = formatKey(prefix, { kind: 'backend', cluster: 'api', address: '10.0.5.1:80' });
    const child = runCli(['ctl', 'register', '--cluster', 'api', '--address', '10.0.5.1:80', '--ttl', '3s', '--weight', '4', '--etcd', etcd.endpoint, '--prefix', prefix]);
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    cleanups.push(() => void child.kill('SIGKILL'));
    await until(() => w.applied().get(key), (text) => text === '{"weight":4}', 15_000);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await until(() => w.applied().has(key), (has) => !has);
    expect(output).toContain('"msg":"deregistered"');
  });

  it('fleet membership: a leased instance key with the applied revision and snapshot hash, gone on stop', async () => {
    const prefix = freshPrefix();
    const w = await watching(prefix);
    const conn = connection(prefix);
    const member = new FleetMember(
      { client: conn.client, prefix, instance: 'lb-1', describe: conn.describe, log: recorder(), version: '0.1.0', ttlSeconds: 5 },
      { revision: w.loop.status().revision, snapshotHash: snapshotHash({ v: 1 }) },
    );
    cleanups.push(() => member.stop());
    await member.start();
    await until(() => fleetFromState(w.loop.state(), new Date()), (f) => f.length === 1);
    await member.update({ revision: 42, snapshotHash: snapshotHash({ v: 2 }) });
    const fleet = await until(() => fleetFromState(w.loop.state(), new Date()), (f) => f[0]?.revision === 42);
    expect(fleet).toEqual([expect.objectContaining({ instance: 'lb-1', version: '0.1.0', revision: 42, snapshot_hash: snapshotHash({ v: 2 }) })]);
    expect(fleet[0]!.age_ms).toBeGreaterThanOrEqual(0);
    expect(await readFleet(conn.client, prefix, new Date())).toEqual([expect.objectContaining({ instance: 'lb-1', revision: 42 })]);
    await member.stop();
    await until(() => fleetFromState(w.loop.state(), new Date()).length, (n) => n === 0);
  });

  it('with several endpoints, a dead one is skipped: every read and write lands on a live one', async () => {
    const prefix = freshPrefix();
    const conn = connectEtcd({ endpoints: ['http://127.0.0.1:1', etcd.endpoint], prefix, required: false }, {}, 1000);
    cleanups.push(() => conn.client.close());
    for (let i = 0; i < 6; i++) {
      await conn.client.put(`${prefix}k${i}`).value('x');
      expect(await conn.client.get(`${prefix}k${i}`).string()).toBe('x');
    }
  });

  it('a watch that stalls without an error is caught by the periodic re-read', async () => {
    const prefix = freshPrefix();
    const w = await watching(prefix, { resyncEveryMs: 500 });
    // A stalled etcd3 watcher (microsoft/etcd3#72) delivers nothing and reports nothing:
    // silence this one's events by hand.
    const watcher = (w.loop as unknown as { watcher: { removeAllListeners(event: string): void } }).watcher;
    watcher.removeAllListeners('data');
    const key = formatKey(prefix, { kind: 'backend', cluster: 'api', address: '10.0.6.1:80' });
    await etcd.client().put(key).value('{"weight":1}');
    await until(() => w.applied().has(key), Boolean);
    expect(w.log.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual(['registry re-read found changes the watch missed']);
    expect(w.loop.status().up).toBe(true);
  });

  // Last: these kill and restart the shared etcd.
  it('etcd killed: up turns false, the last state stays, writes fail fast naming the registry; after a restart the loop converges', async () => {
    const prefix = freshPrefix();
    const w = await watching(prefix);
    const before = await w.writer.put(backend('api', '10.0.3.1:80'), 0);
    if (!before.ok) throw new Error('setup write failed');
    await until(() => w.loop.status().revision, (rev) => rev >= before.revision);
    const statusBefore = w.loop.status();
    expect(statusBefore.up).toBe(true);

    await etcd.kill();
    await until(() => w.loop.status().up, (up) => !up);
    expect(w.applied().size).toBe(1);
    expect(w.loop.status().revision).toBe(statusBefore.revision);
    const started = Date.now();
    const failure = await w.writer.put(backend('api', '10.0.3.2:80'), 0).then(
      () => undefined,
      (error: unknown) => error,
    );
    console.info(`write with etcd down failed after ${Date.now() - started} ms`);
    expect(failure).toBeInstanceOf(RegistryError);
    expect((failure as RegistryError).code).toBe('SLUICE_REGISTRY_UNAVAILABLE');
    expect((failure as RegistryError).message).toContain(`registry etcd ${etcd.endpoint}`);

    // A writer that still believes etcd is up makes the call; it fails within the call
    // deadline, and the loop is told.
    const reported: unknown[] = [];
    const optimist = new RegistryWriter({ client: w.conn.client, prefix, describe: w.conn.describe, health: { status: () => ({ up: true }), reportUnreachable: (e) => reported.push(e) } });
    const calledAt = Date.now();
    const called = await optimist.put(backend('api', '10.0.3.2:80'), 0).then(
      () => undefined,
      (error: unknown) => error,
    );
    console.info(`write attempted with etcd down failed after ${Date.now() - calledAt} ms`);
    expect((called as RegistryError).code).toBe('SLUICE_REGISTRY_UNAVAILABLE');
    expect((called as RegistryError).message).toMatch(new RegExp(`^registry etcd ${etcd.endpoint}: cannot write ${prefix}clusters/api/backends/10.0.3.2:80: `));
    expect(reported).toHaveLength(1);

    await etcd.restart();
    await until(() => w.loop.status().up, Boolean, 15_000);
    const after = await w.writer.put(backend('api', '10.0.3.2:80'), 0);
    expect(after.ok).toBe(true);
    await until(() => w.applied().size, (n) => n === 2);
    expect(w.applied()).toEqual(await etcdHolds(prefix));
    expect(w.log.lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['registry down; keeping the last state', 'registry up']));
  });

  it('a registration whose lease etcd expired during an outage is put again under a new lease when etcd is back', async () => {
    const prefix = freshPrefix();
    const conn = connection(prefix);
    const log = recorder();
    const registration = await register(conn, { cluster: 'api', address: '10.0.7.1:80', weight: 1, ttlSeconds: 1 }, log);
    cleanups.push(() => registration.stop());
    const leaseOf = async (): Promise<string | undefined> => (await etcd.client().getAll().prefix(prefix).exec()).kvs[0]?.lease;
    const oldLease = await leaseOf();
    await etcd.kill();
    // etcd3 gives a lease up once it has gone unrenewed for twice its ttl.
    await until(() => log.lines.some((l) => l.msg === 'lease lost; registering again'), Boolean);
    await etcd.restart();
    const w = await watching(prefix);
    const newLease = await eventually(leaseOf, (lease) => lease !== undefined && lease !== oldLease, 15_000);
    expect(newLease).not.toBe(oldLease);
    // A restarted etcd renews every lease once; the old one then expires unrenewed. Its
    // expiry must not take the registration with it.
    const ttlOf = async (): Promise<number> => Number((await etcd.client().leaseClient.leaseTimeToLive({ ID: oldLease! })).TTL);
    expect(await eventually(ttlOf, (ttl) => ttl === -1, 15_000)).toBe(-1);
    const marker = await etcd.client().put(`${prefix}marker`).value('x');
    await until(() => w.loop.status().revision, (rev) => rev >= Number(marker.header.revision));
    expect(w.applied().has(registration.key)).toBe(true);
  });
});
