/**
 * The main thread: loads config, creates the shared buffers, starts the control plane and
 * the data-plane workers, serves the admin API and turns signals into lifecycle steps.
 * It owns nothing on the hot path.
 */
import { availableParallelism } from 'node:os';
import { buildAdminApp, type AdminApp } from './controlplane/admin/app.ts';
import { parseHostPort } from './shared/address.ts';
import type { Config } from './shared/config/schema.ts';
import {
  CounterTables,
  createCounterBuffer,
  DEFAULT_BACKEND_SLOTS,
  DEFAULT_LISTENER_SLOTS,
  type CounterDimensions,
} from './shared/counters.ts';
import { SluiceError } from './shared/errors.ts';
import { createLogger, flushLogs, type Logger } from './shared/logger.ts';
import type { ListenerBinding } from './shared/messages.ts';
import { createSnapshotBuffer } from './shared/snapshot/layout.ts';
import { SnapshotReader } from './shared/snapshot/reader.ts';
import { ControlPlaneHost } from './supervisor/control-plane-host.ts';
import { DataPlanePool, type ListenFailure } from './supervisor/data-plane-pool.ts';

export interface SupervisorOptions {
  readonly config: Config;
  readonly configFile: string;
  readonly logLevel: string;
}

export function workerCount(setting: Config['workers']): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

function listenerBindings(config: Config): ListenerBinding[] {
  return config.listeners.map((listener, slot) => {
    const address = parseHostPort(listener.listen);
    if (address === undefined) throw new SluiceError('SLUICE_CONFIG_INVALID', `bad listen address ${listener.listen}`);
    const binding = { name: listener.name, slot, host: address.host, port: address.port };
    if (listener.protocol === 'tcp') return { ...binding, protocol: 'tcp' };
    const { udp } = listener;
    return {
      ...binding,
      protocol: 'udp',
      udp: {
        sessionTimeoutMs: udp.session_timeout,
        maxSessions: udp.max_sessions,
        maxReplies: udp.max_replies,
        recvBufferBytes: udp.recv_buffer,
        sendBufferBytes: udp.send_buffer,
      },
    };
  });
}

function describeListenFailures(failures: readonly ListenFailure[]): string {
  const unique = new Map<string, ListenFailure>();
  for (const f of failures) unique.set(`${f.listener} ${f.code}`, f);
  return [...unique.values()]
    .map((f) =>
      f.code === 'EADDRINUSE'
        ? `listener ${f.listener}: ${f.address} is already in use (EADDRINUSE)`
        : `listener ${f.listener}: cannot listen on ${f.address}: ${f.message}`,
    )
    .join('\n');
}

export class Supervisor {
  private readonly options: SupervisorOptions;
  private readonly rootLog: Logger;
  private readonly log: Logger;
  private readonly counterDims: CounterDimensions;
  private readonly counters: CounterTables;
  private readonly snapshotBuffer: SharedArrayBuffer;
  private readonly controlPlane: ControlPlaneHost;
  private readonly dataPlane: DataPlanePool;
  private admin: AdminApp | undefined;
  private draining = false;

  constructor(options: SupervisorOptions) {
    this.options = options;
    const root = createLogger(options.logLevel);
    this.rootLog = root;
    this.log = root.child({ component: 'supervisor' });
    const workers = workerCount(options.config.workers);
    this.counterDims = { workers, backendSlots: DEFAULT_BACKEND_SLOTS, listenerSlots: DEFAULT_LISTENER_SLOTS };
    const counterBuffer = createCounterBuffer(this.counterDims);
    this.counters = new CounterTables(counterBuffer, this.counterDims);
    this.snapshotBuffer = createSnapshotBuffer();
    const shared = {
      snapshotBuffer: this.snapshotBuffer,
      counterBuffer,
      counterDims: this.counterDims,
      logLevel: options.logLevel,
      logger: root,
    };
    this.controlPlane = new ControlPlaneHost({ ...shared, config: options.config });
    this.dataPlane = new DataPlanePool({ ...shared, workers, counters: this.counters });
  }

  /** Start everything; on any failure, stop what was started and throw a coded error. */
  async start(): Promise<void> {
    const { config } = this.options;
    try {
      const { version, backends } = await this.controlPlane.start();
      await this.startAdmin();
      const failures = await this.dataPlane.start(listenerBindings(config));
      if (failures.length > 0) throw new SluiceError('SLUICE_LISTEN_FAILED', describeListenFailures(failures));
      this.log.info(
        {
          config: this.options.configFile,
          workers: this.dataPlane.size,
          listeners: config.listeners.map((l) => `${l.name} ${l.protocol} ${l.listen} -> ${l.cluster}`),
          clusters: config.clusters.map((c) => `${c.name} (${c.algorithm}, ${c.backends.length} backends)`),
          backends,
          admin: config.admin.listen,
          snapshotVersion: version,
        },
        'sluice started',
      );
    } catch (error) {
      await this.stopAll();
      throw error;
    }
  }

  /** Graceful stop: not ready, stop accepting, let connections finish up to the drain timeout. */
  async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const { drain_timeout: timeoutMs } = this.options.config.shutdown;
    this.log.info({ drainTimeoutMs: timeoutMs }, 'draining: listeners closed, waiting for open connections');
    await this.dataPlane.drain(timeoutMs, (connections) => {
      this.log.info({ connections }, 'draining');
    });
    await this.stopAll();
    this.log.info('drained; exiting');
    flushLogs();
  }

  private async startAdmin(): Promise<void> {
    const { listen } = this.options.config.admin;
    const address = parseHostPort(listen);
    if (address === undefined) throw new SluiceError('SLUICE_CONFIG_INVALID', `bad admin address ${listen}`);
    const admin = buildAdminApp({
      snapshots: new SnapshotReader(this.snapshotBuffer),
      counters: this.counters,
      listeners: () =>
        this.options.config.listeners.map((l, slot) => ({ name: l.name, protocol: l.protocol, listen: l.listen, cluster: l.cluster, slot })),
      isReady: () => !this.draining,
      workerResources: async () => this.dataPlane.resources(),
      logger: this.rootLog,
    });
    try {
      await admin.listen({ host: address.host, port: address.port });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new SluiceError(
        'SLUICE_LISTEN_FAILED',
        code === 'EADDRINUSE'
          ? `admin: ${listen} is already in use (EADDRINUSE)`
          : `admin: cannot listen on ${listen}: ${(error as Error).message}`,
      );
    }
    this.admin = admin;
  }

  private async stopAll(): Promise<void> {
    await this.dataPlane.terminate();
    await this.controlPlane.stop();
    await this.admin?.close();
  }
}
