/**
 * The peers the bench compares against come from Debian's packages. A missing tool is
 * installed with apt-get (the bench runs as root on the bench machine); without root, or
 * with --no-install, the run stops and says what to install.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const nginxStreamModule = '/usr/lib/nginx/modules/ngx_stream_module.so';

/** Each tool the bench runs, the file that proves it is there, and the package that brings it. */
const TOOLS = [
  { tool: 'haproxy', file: '/usr/sbin/haproxy', pkg: 'haproxy' },
  { tool: 'nginx', file: '/usr/sbin/nginx', pkg: 'nginx-light' },
  // Debian ships nginx's stream (layer-4) proxy as a dynamic module in its own package.
  { tool: 'nginx stream module', file: nginxStreamModule, pkg: 'libnginx-mod-stream' },
  { tool: 'wrk', file: '/usr/bin/wrk', pkg: 'wrk' },
  { tool: 'iperf3', file: '/usr/bin/iperf3', pkg: 'iperf3' },
] as const;

export function missingPackages(): string[] {
  return TOOLS.filter((t) => !existsSync(t.file)).map((t) => t.pkg);
}

/** Make sure every peer is installed; throws with the apt-get command when it cannot. */
export function ensurePeersInstalled(allowInstall: boolean, log: (line: string) => void): void {
  const missing = missingPackages();
  if (missing.length === 0) return;
  const command = `apt-get install -y ${missing.join(' ')}`;
  if (!allowInstall || process.getuid?.() !== 0) {
    throw new Error(`the bench needs ${missing.join(', ')}; install them with: ${command}`);
  }
  log(`installing ${missing.join(' ')} from Debian's packages`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Other people's apt runs may hold the dpkg lock for a while: wait for it instead of failing.
  const lock = ['-o', 'DPkg::Lock::Timeout=300'];
  const update = spawnSync('apt-get', [...lock, 'update', '-qq'], { env, stdio: 'inherit' });
  if (update.status !== 0) throw new Error('apt-get update failed');
  const install = spawnSync('apt-get', [...lock, 'install', '-y', '-qq', ...missing], { env, stdio: 'inherit' });
  if (install.status !== 0) throw new Error(`${command} failed`);
  const still = missingPackages();
  if (still.length > 0) throw new Error(`still missing after install: ${still.join(', ')}`);
}

/** Versions of the peers and tools, for the report's header. */
export function peerVersions(): Record<string, string> {
  // Some of these print their version on stderr, some exit non-zero after printing it.
  const version = (cmd: string, args: string[], pattern: RegExp): string => {
    const out = spawnSync(cmd, args, { encoding: 'utf8' });
    return pattern.exec(`${out.stdout}${out.stderr}`)?.[1] ?? 'unknown';
  };
  return {
    node: process.version,
    haproxy: version('haproxy', ['-v'], /HAProxy version (\S+)/),
    nginx: version('nginx', ['-v'], /nginx\/(\S+)/),
    wrk: version('wrk', ['-v'], /wrk (\S+)/),
    iperf3: version('iperf3', ['--version'], /iperf (\S+)/),
  };
}
