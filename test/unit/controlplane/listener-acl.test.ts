/**
 * Listener acls set through the admin API, in the control plane: published in the next
 * snapshot, written to the state file first, taken back after a restart, and dropped once
 * config.yaml's own acl for the listener changes.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ControlPlane } from '../../../src/controlplane/control-plane.ts';
import { pruneForConfig, recordListenerAcl, EMPTY_RUNTIME_STATE, type RuntimeState } from '../../../src/controlplane/runtime-state.ts';
import { parseStateText, serializeState } from '../../../src/controlplane/state-file.ts';
import { SlotAllocator } from '../../../src/controlplane/slot-allocator.ts';
import { SnapshotWriter } from '../../../src/controlplane/snapshot-writer.ts';
import { parseConfig } from '../../../src/shared/config/load.ts';
import type { Config } from '../../../src/shared/config/schema.ts';
import { CounterTables, createCounterBuffer } from '../../../src/shared/counters.ts';
import { createSnapshotBuffer } from '../../../src/shared/snapshot/layout.ts';
import { SnapshotReader } from '../../../src/shared/snapshot/reader.ts';

function config(fileAcl: string, stateFile?: string): Config {
  return parseConfig(
    [
      ...(stateFile === undefined ? [] : [`state_file: ${JSON.stringify(stateFile)}`]),
      'listeners:',
      `  - {name: web, listen: "127.0.0.1:1", cluster: web, acl: ${fileAcl}}`,
      '  - {name: other, listen: "127.0.0.1:2", cluster: web}',
      '  - {name: dns, protocol: udp, listen: "127.0.0.1:3", cluster: web}',
      'clusters: [{name: web, backends: []}]',
      '',
    ].join('\n'),
    'test.yaml',
  );
}

const started: ControlPlane[] = [];
afterEach(() => {
  for (const cp of started.splice(0)) cp.stop();
});

async function start(cfg: Config, writeState?: (file: string, state: RuntimeState) => Promise<void>): Promise<{ cp: ControlPlane; reader: SnapshotReader }> {
  const dims = { workers: 1, backendSlots: 8, listenerSlots: 4 };
  const sab = createSnapshotBuffer(64 * 1024);
  const cp = new ControlPlane({
    config: cfg,
    counters: new CounterTables(createCounterBuffer(dims), dims),
    writer: new SnapshotWriter(sab),
    slots: new SlotAllocator(dims.backendSlots),
    log: pino({ level: 'silent' }),
    tickMs: 3_600_000,
    ...(writeState === undefined ? {} : { writeState }),
  });
  started.push(cp);
  await cp.start();
  return { cp, reader: new SnapshotReader(sab) };
}

const aclOf = (reader: SnapshotReader, name = 'web') => reader.current().listeners.find((l) => l.name === name)?.acl;

describe('ControlPlane.setListenerAcl', () => {
  it('publishes the acl in a new snapshot version and answers with that version', async () => {
    const { cp, reader } = await start(config('{deny: [10.0.0.0/8]}'));
    const before = reader.current().version;
    const result = await cp.setListenerAcl('web', { allow: [], deny: ['127.0.0.4/32'] });
    expect(result).toEqual({ ok: true, version: before + 1, acl: { allow: [], deny: ['127.0.0.4/32'] } });
    expect(reader.current().version).toBe(before + 1);
    expect(aclOf(reader)).toEqual({ allow: [], deny: ['127.0.0.4/32'] });
    expect(aclOf(reader, 'other')).toBeUndefined();
  });

  it('refuses an unknown listener and changes nothing', async () => {
    const { cp, reader } = await start(config('{deny: [10.0.0.0/8]}'));
    const before = reader.current().version;
    expect(await cp.setListenerAcl('nope', { allow: [], deny: [] })).toEqual({ ok: false, error: 'NOT_FOUND', message: 'no listener named "nope"' });
    expect(reader.current().version).toBe(before);
  });

  it('refuses a udp listener (the edge gate runs on TCP only) and changes nothing', async () => {
    const { cp, reader } = await start(config('{deny: [10.0.0.0/8]}'));
    const before = reader.current().version;
    expect(await cp.setListenerAcl('dns', { allow: [], deny: ['10.0.0.0/8'] })).toEqual({
      ok: false,
      error: 'BAD_REQUEST',
      message: 'listener "dns" is udp: an acl applies only to TCP listeners',
    });
    expect(reader.current().version).toBe(before);
  });

  it('refuses the change whole when the state file cannot be written', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-acl-'));
    const failing = (): Promise<void> => Promise.reject(new Error('disk full'));
    const { cp, reader } = await start(config('{deny: [10.0.0.0/8]}', path.join(dir, 'state.json')), failing);
    const result = await cp.setListenerAcl('web', { allow: [], deny: ['127.0.0.4/32'] });
    expect(result).toMatchObject({ ok: false, error: 'UNAVAILABLE' });
    expect(aclOf(reader)).toEqual({ allow: [], deny: ['10.0.0.0/8'] });
  });

  it('survives a restart through the state file, until the file acl changes', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'sluice-acl-')), 'state.json');
    const first = await start(config('{deny: [10.0.0.0/8]}', file));
    await first.cp.setListenerAcl('web', { allow: ['127.0.0.0/8'], deny: [] });
    first.cp.stop();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ acls: { web: { acl: { allow: ['127.0.0.0/8'], deny: [] }, file_acl: { allow: [], deny: ['10.0.0.0/8'] } } } });

    // A fresh process (new snapshot buffer) on the same file and state file.
    const second = await start(config('{deny: [10.0.0.0/8]}', file));
    expect(aclOf(second.reader)).toEqual({ allow: ['127.0.0.0/8'], deny: [] });
    // A reload that keeps the file acl keeps the override...
    await second.cp.applyConfig(config('{deny: [10.0.0.0/8]}', file));
    expect(aclOf(second.reader)).toEqual({ allow: ['127.0.0.0/8'], deny: [] });
    // ...one that changes it makes the file win, and forgets the override for good.
    await second.cp.applyConfig(config('{deny: [11.0.0.0/8]}', file));
    expect(aclOf(second.reader)).toEqual({ allow: [], deny: ['11.0.0.0/8'] });
    second.cp.stop();
    const third = await start(config('{deny: [10.0.0.0/8]}', file));
    expect(aclOf(third.reader)).toEqual({ allow: [], deny: ['10.0.0.0/8'] });
  });
});

describe('runtime state and state file: acls', () => {
  const cfg = config('{deny: [10.0.0.0/8]}');
  const web = cfg.listeners[0]!;

  it('records an override with the file acl it replaced, and prunes it when that changes or the listener goes', () => {
    const state = recordListenerAcl(EMPTY_RUNTIME_STATE, web, { allow: [], deny: ['1.2.3.4/32'] });
    expect(state.acls).toEqual({ web: { acl: { allow: [], deny: ['1.2.3.4/32'] }, file_acl: { allow: [], deny: ['10.0.0.0/8'] } } });
    expect(pruneForConfig(state, cfg).acls).toEqual(state.acls);
    expect(pruneForConfig(state, config('{deny: [12.0.0.0/8]}')).acls).toEqual({});
    const withoutWeb = { ...cfg, listeners: cfg.listeners.slice(1) };
    expect(pruneForConfig(state, withoutWeb).acls).toEqual({});
  });

  it('round-trips through the file format, and reads files written before acls existed', () => {
    const state = recordListenerAcl(EMPTY_RUNTIME_STATE, web, { allow: ['2001:db8::/32'], deny: [] });
    expect(parseStateText(serializeState(state))).toEqual(state);
    const old = JSON.stringify({ format: 1, written_at: 'x', added: [], removed: [], drained: [], weights: {} });
    expect(parseStateText(old)).toEqual(EMPTY_RUNTIME_STATE);
    const bad = JSON.stringify({ format: 1, written_at: 'x', added: [], removed: [], drained: [], weights: {}, acls: { web: { acl: { allow: ['nope'], deny: [] }, file_acl: { allow: [], deny: [] } } } });
    expect(parseStateText(bad)).toMatch(/acls.web.acl.allow.0: expected a CIDR block/);
  });
});
