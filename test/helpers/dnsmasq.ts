/**
 * A real dnsmasq on 127.0.0.1 for discovery tests: A/AAAA records from a hosts file it
 * re-reads on SIGHUP, SRV records from the command line (changing them needs a restart).
 * No upstream, no /etc/hosts, no config file: it answers only what the test gave it.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './client.ts';
import { freePort } from './ports.ts';

export interface DnsmasqOptions {
  /** hosts-file lines: `10.0.0.1 api.test`. */
  readonly hosts?: readonly string[];
  /** `--srv-host` values: `_api._tcp.test,a1.test,8080,10,5` (name,target,port,priority,weight). */
  readonly srv?: readonly string[];
  /** TTL of the local records (dnsmasq's default is 0). */
  readonly localTtl?: number;
  /** Names under this domain that it does not know are NXDOMAIN (without it: REFUSED). */
  readonly domain?: string;
}

export interface Dnsmasq {
  readonly port: number;
  /** `127.0.0.1:port`, for `resolvers:`. */
  readonly address: string;
  readonly pid: number;
  /** Rewrites the hosts file and waits until dnsmasq has re-read it (SIGHUP). */
  setHosts(lines: readonly string[]): Promise<void>;
  stop(): Promise<void>;
}

export async function startDnsmasq(options: DnsmasqOptions = {}): Promise<Dnsmasq> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-dnsmasq-'));
  // dnsmasq drops privileges when started as root and re-reads the file as that user.
  chmodSync(dir, 0o755);
  const hostsFile = join(dir, 'hosts');
  writeHosts(hostsFile, options.hosts ?? []);
  for (let attempt = 0; ; attempt++) {
    try {
      return await launch(dir, hostsFile, options);
    } catch (error) {
      if (attempt >= 5) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
}

function writeHosts(file: string, lines: readonly string[]): void {
  writeFileSync(file, lines.map((line) => `${line}\n`).join(''), { mode: 0o644 });
  chmodSync(file, 0o644);
}

async function launch(dir: string, hostsFile: string, options: DnsmasqOptions): Promise<Dnsmasq> {
  const port = await freePort();
  const args = [
    '--no-daemon',
    '--no-resolv',
    '--no-hosts',
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    `--addn-hosts=${hostsFile}`,
    '--pid-file=',
    '--conf-file=/dev/null',
    '--log-facility=-',
    `--local-ttl=${options.localTtl ?? 0}`,
    `--local=/${options.domain ?? 'test'}/`,
    ...(options.srv ?? []).map((srv) => `--srv-host=${srv}`),
  ];
  const child = spawn('/usr/sbin/dnsmasq', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    log += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await Promise.race([
    eventually(() => Promise.resolve(log), (text) => text.includes(`read ${hostsFile}`), 10_000, 20),
    exited.then(() => {
      throw new Error(`dnsmasq exited: ${log}`);
    }),
  ]);
  if (!log.includes(`read ${hostsFile}`)) {
    await kill(child, exited);
    throw new Error(`dnsmasq did not start: ${log}`);
  }
  const reads = (): number => log.split(`read ${hostsFile}`).length - 1;
  return {
    port,
    address: `127.0.0.1:${port}`,
    pid: child.pid ?? 0,
    setHosts: async (lines) => {
      const before = reads();
      writeHosts(hostsFile, lines);
      child.kill('SIGHUP');
      await eventually(() => Promise.resolve(reads()), (count) => count > before, 10_000, 20);
      if (reads() === before) throw new Error(`dnsmasq did not re-read ${hostsFile}: ${log}`);
    },
    stop: async () => {
      await kill(child, exited);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function kill(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  await exited;
}
