/**
 * The operations files (deploy/, Dockerfile) against the real daemon: the metrics the
 * dashboard and the alerts name exist, the rules and every dashboard query parse, the
 * systemd unit verifies and its commands (start, readiness wait, reload, stop with a
 * drain) work as a process tree, and the container health check and the Kubernetes example
 * fit the daemon's config and drain timeout. Nothing here can drift from what Sluice does.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/shared/config/load.ts';
import { startBackend } from '../helpers/backends.ts';
import { eventually, openEcho, roundTrip } from '../helpers/client.ts';
import { startDaemon, tcpConfig, writeConfig } from '../helpers/daemon.ts';
import { scrape, total } from '../helpers/metrics.ts';
import { freePorts } from '../helpers/ports.ts';
import { freeUdpPort, startUdpBackend, udpClient } from '../helpers/udp.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const UNIT = path.join(ROOT, 'deploy/systemd/sluice.service');
const RULES = path.join(ROOT, 'deploy/prometheus/sluice-rules.yml');
const DASHBOARD = path.join(ROOT, 'deploy/grafana/sluice.json');
const KUBERNETES = path.join(ROOT, 'deploy/kubernetes/sluice.yaml');
const DOCKERFILE = path.join(ROOT, 'Dockerfile');
const LOGROTATE = path.join(ROOT, 'deploy/logrotate/sluice');
const PROMTOOL = '/usr/bin/promtool';
/** Where the unit expects the code and the config; the tests put this checkout and a temp file there. */
const INSTALL_DIR = '/opt/sluice';
const INSTALL_CONFIG = '/etc/sluice/config.yaml';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const METRIC_NAME = /\bsluice_[a-z0-9_]+/g;

function dashboardExprs(): string[] {
  interface Panel {
    readonly targets?: readonly { readonly expr?: string }[];
    readonly panels?: readonly Panel[];
  }
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[]; templating: { list: { definition?: string }[] } };
  const exprs: string[] = [];
  const visit = (panels: readonly Panel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) if (target.expr !== undefined) exprs.push(target.expr);
      visit(panel.panels ?? []);
    }
  };
  visit(dashboard.panels);
  for (const variable of dashboard.templating.list) if (variable.definition !== undefined) exprs.push(variable.definition);
  return exprs;
}

function ruleExprs(): string[] {
  const rules = parseYaml(readFileSync(RULES, 'utf8')) as { groups: { rules: { expr: string }[] }[] };
  return rules.groups.flatMap((g) => g.rules.map((r) => r.expr));
}

function namesIn(exprs: readonly string[]): string[] {
  return [...new Set(exprs.flatMap((e) => e.match(METRIC_NAME) ?? []))].sort();
}

/** `Key=value` lines of a unit file; a key given twice keeps every value. */
function unitKeys(text: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match === null) continue;
    keys.set(match[1]!, [...(keys.get(match[1]!) ?? []), match[2]!]);
  }
  return keys;
}

function unitKey(keys: Map<string, string[]>, key: string): string {
  const value = keys.get(key)?.[0];
  if (value === undefined) throw new Error(`the unit has no ${key}=`);
  return value;
}

/** A unit command as systemd would run it here: this checkout for /opt/sluice, `config` for the config. */
function unitCommand(line: string, config: string, mainPid?: number): string[] {
  return line
    .replaceAll(INSTALL_DIR, ROOT)
    .replaceAll(INSTALL_CONFIG, config)
    .replaceAll('$MAINPID', String(mainPid ?? ''))
    .split(/\s+/);
}

function run(argv: readonly string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  const [command, ...args] = argv;
  const child = spawn(command!, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

/** The default drain time (shutdown.delay + shutdown.drain_timeout) of a config, in ms. */
function drainBudgetMs(configText: string): number {
  const { shutdown } = parseConfig(configText, 'config.yaml');
  return shutdown.delay + shutdown.drain_timeout;
}

/** A config that leaves shutdown at its defaults. */
const DEFAULTS_CONFIG = 'listeners:\n  - {name: web, listen: 127.0.0.1:8080, cluster: web}\nclusters:\n  - {name: web, backends: [{address: 127.0.0.1:9001}]}\n';

/** The daemon started by the unit's ExecStart, with its JSON log lines. */
interface UnitProcess {
  readonly child: ChildProcess;
  readonly logs: { msg: string }[];
  readonly exited: Promise<number | null>;
}

function startUnitProcess(argv: readonly string[]): UnitProcess {
  const [command, ...args] = argv;
  const child = spawn(command!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: { msg: string }[] = [];
  let pending = '';
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = (pending + chunk.toString()).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.startsWith('{')) logs.push(JSON.parse(line) as { msg: string });
  });
  child.stderr.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    return exited;
  });
  return { child, logs, exited };
}

async function readyStatus(adminPort: number): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status;
  } catch {
    return 0;
  }
}

describe('dashboard and alert rules', () => {
  it('name only metrics a running Sluice exports (TCP and UDP traffic, a failed and a good reload)', async () => {
    const echo = await startBackend('echo');
    const udpEcho = await startUdpBackend('echo');
    cleanups.push(async () => echo.close(), async () => udpEcho.close());
    const [port, adminPort] = await freePorts(2);
    const udpPort = await freeUdpPort();
    const yaml = `workers: 2
admin: {listen: 127.0.0.1:${adminPort}}
listeners:
  - {name: web, listen: 127.0.0.1:${port}, cluster: web}
  - {name: dns, protocol: udp, listen: 127.0.0.1:${udpPort}, cluster: dns}
clusters:
  - name: web
    health_check: {type: tcp, interval: 1s, timeout: 500ms, rise: 1, fall: 3}
    backends: [{address: ${echo.address}}]
  - name: dns
    health_check: {type: none}
    backends: [{address: ${udpEcho.address}}]
`;
    const daemon = await startDaemon(yaml, adminPort!);
    cleanups.push(async () => daemon.stop('SIGKILL'));
    expect((await roundTrip(port!, Buffer.from('hello'))).toString()).toBe('hello');
    const client = await udpClient();
    cleanups.push(() => {
      client.close();
      return Promise.resolve();
    });
    expect((await client.request(udpPort, Buffer.from('ping'))).toString()).toBe('ping');

    // A rejected reload, then a good one: the counter behind SluiceReloadFailed.
    writeFileSync(daemon.configFile, `${yaml}bogus_key: 1\n`);
    daemon.child.kill('SIGHUP');
    await daemon.waitForLog((l) => l.msg === 'reload rejected: the running config stays');
    writeFileSync(daemon.configFile, yaml);
    daemon.child.kill('SIGHUP');
    await daemon.waitForLog((l) => l.msg === 'config reloaded');

    const samples = await scrape(daemon.adminUrl);
    expect(total(samples, 'sluice_config_reloads_total', { result: 'failure' })).toBe(1);
    expect(total(samples, 'sluice_config_reloads_total', { result: 'success' })).toBe(1);
    const exported = new Set(samples.map((s) => s.name));
    const named = namesIn([...dashboardExprs(), ...ruleExprs()]);
    expect(named.length).toBeGreaterThan(10);
    expect(named.filter((name) => !exported.has(name))).toEqual([]);
  }, 90_000);

  it('the rules pass promtool check rules, and so does every dashboard query', () => {
    const rules = spawnSync(PROMTOOL, ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(rules.stdout + rules.stderr).toContain('SUCCESS');
    expect(rules.status).toBe(0);

    // promtool parses PromQL only inside rules: wrap each dashboard query in one, with
    // Grafana's variables replaced as Grafana would.
    const queries = dashboardExprs().filter((e) => !e.startsWith('label_values('));
    const asRules = {
      groups: [
        {
          name: 'dashboard',
          rules: queries.map((expr, i) => ({ record: `dashboard:query_${i}`, expr: expr.replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*') })),
        },
      ],
    };
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'sluice-dashboard-')), 'queries.yml');
    writeFileSync(file, JSON.stringify(asRules));
    const checked = spawnSync(PROMTOOL, ['check', 'rules', file], { encoding: 'utf8' });
    expect(checked.stdout + checked.stderr).toContain(`SUCCESS: ${queries.length} rules found`);
  });

  it('the alert rules fire on the series Sluice exports (promtool test rules)', () => {
    const tested = spawnSync(PROMTOOL, ['test', 'rules', path.join(ROOT, 'deploy/prometheus/sluice-rules.test.yml')], { encoding: 'utf8', cwd: path.join(ROOT, 'deploy/prometheus') });
    expect(tested.stdout + tested.stderr).toContain('SUCCESS');
    expect(tested.status).toBe(0);
  });
});

describe('systemd unit', () => {
  const unit = readFileSync(UNIT, 'utf8');
  const keys = unitKeys(unit);

  it('passes systemd-analyze verify (with this checkout as /opt/sluice)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-unit-'));
    writeFileSync(path.join(dir, 'sluice.service'), unit.replaceAll(INSTALL_DIR, ROOT));
    const verified = spawnSync('systemd-analyze', ['verify', path.join(dir, 'sluice.service')], { encoding: 'utf8' });
    expect(verified.stderr).toBe('');
    expect(verified.status).toBe(0);
  });

  it('stops with SIGTERM and gives the drain more time than the default drain budget', () => {
    expect(unitKey(keys, 'KillSignal')).toBe('SIGTERM');
    expect(Number(unitKey(keys, 'TimeoutStopSec')) * 1000).toBeGreaterThan(drainBudgetMs(DEFAULTS_CONFIG));
    expect(unitKey(keys, 'ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(unitKey(keys, 'Type')).toBe('exec');
  });

  it('its commands as a process tree: start returns once ready, reload applies the file, SIGTERM drains an open connection and exits 0', async () => {
    const first = await startBackend('echo');
    const second = await startBackend('echo');
    cleanups.push(async () => first.close(), async () => second.close());
    const [port, adminPort] = await freePorts(2);
    const yaml = tcpConfig({ listenPort: port!, adminPort: adminPort!, backends: [first.address], workers: 1, drainTimeout: '30s' });
    const config = writeConfig(yaml);

    const sluice = startUnitProcess(unitCommand(unitKey(keys, 'ExecStart'), config));
    const waited = await run(unitCommand(unitKey(keys, 'ExecStartPost'), config, sluice.child.pid));
    expect(waited).toEqual({ code: 0, stderr: '' });
    // ExecStartPost returned only once Sluice was ready: what `systemctl start` waits for.
    expect(await readyStatus(adminPort!)).toBe(200);

    // The container's HEALTHCHECK, run as Docker would, agrees.
    const healthcheck = dockerHealthcheck();
    expect((await run(healthcheck, { SLUICE_ADMIN_PORT: String(adminPort) })).code).toBe(0);

    writeFileSync(config, yaml.replace(`      - { address: ${first.address} }\n`, `      - { address: ${first.address} }\n      - { address: ${second.address} }\n`));
    expect((await run(unitCommand(unitKey(keys, 'ExecReload'), config, sluice.child.pid))).code).toBe(0);
    await eventually(async () => Promise.resolve(sluice.logs.some((l) => l.msg === 'config reloaded')), Boolean);
    const backends = (await (await fetch(`http://127.0.0.1:${adminPort}/backends`)).json()) as unknown[];
    expect(backends).toHaveLength(2);

    const held = await openEcho(port!);
    cleanups.push(() => {
      held.socket.destroy();
      return Promise.resolve();
    });
    sluice.child.kill(unitKey(keys, 'KillSignal') as NodeJS.Signals);
    await eventually(async () => readyStatus(adminPort!), (status) => status === 503);
    expect((await run(healthcheck, { SLUICE_ADMIN_PORT: String(adminPort) })).code).toBe(1);
    // Draining: the open connection still flows; the process waits for it.
    expect(await held.exchange('still here')).toBe('still here');
    expect(sluice.child.exitCode).toBe(null);
    held.socket.end();
    expect(await sluice.exited).toBe(0);
  }, 90_000);

  it('ExecStartPost fails at once, instead of waiting out its timeout, when Sluice exits at start-up', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => blocker.close(resolve)));
    const taken = (blocker.address() as net.AddressInfo).port;
    const [adminPort] = await freePorts(1);
    const config = writeConfig(tcpConfig({ listenPort: taken, adminPort: adminPort!, backends: ['127.0.0.1:1'], workers: 1 }));

    const sluice = startUnitProcess(unitCommand(unitKey(keys, 'ExecStart'), config));
    const waited = await run(unitCommand(unitKey(keys, 'ExecStartPost'), config, sluice.child.pid));
    expect(await sluice.exited).toBe(1);
    expect(waited.code).toBe(1);
    expect(waited.stderr).toContain(`sluice (pid ${sluice.child.pid}) exited before http://127.0.0.1:${adminPort}/readyz answered 200`);
  }, 60_000);
});

/** The HEALTHCHECK's CMD of the Dockerfile as an argv. */
function dockerHealthcheck(): string[] {
  const text = readFileSync(DOCKERFILE, 'utf8').replaceAll('\\\n', ' ');
  const line = text.split('\n').find((l) => l.startsWith('HEALTHCHECK'));
  const cmd = line === undefined ? undefined : /CMD (\[.*\])\s*$/.exec(line)?.[1];
  if (cmd === undefined) throw new Error('the Dockerfile has no HEALTHCHECK ... CMD [...]');
  const argv = JSON.parse(cmd) as string[];
  // The image's `node`; here the one running the tests.
  return argv[0] === 'node' ? [process.execPath, ...argv.slice(1)] : argv;
}

describe('container and Kubernetes', () => {
  it('the Dockerfile runs as a non-root user, stops with SIGTERM and checks /readyz', () => {
    const text = readFileSync(DOCKERFILE, 'utf8');
    expect(text).toMatch(/^FROM node:24-slim$/m);
    expect(text).toMatch(/^RUN npm ci --omit=dev/m);
    expect(text).toMatch(/^USER node$/m);
    expect(text).toMatch(/^STOPSIGNAL SIGTERM$/m);
    expect(dockerHealthcheck().join(' ')).toContain('/readyz');
    // Everything the image copies exists.
    for (const match of text.matchAll(/^COPY (.+) \S+$/gm)) for (const source of match[1]!.split(' ')) expect(existsSync(path.join(ROOT, source)), source).toBe(true);
  });

  it('the example config is valid, probes /readyz, and the grace period outlasts preStop plus the drain', () => {
    interface Doc {
      kind: string;
      data?: Record<string, string>;
      spec?: {
        template: {
          spec: {
            terminationGracePeriodSeconds: number;
            containers: {
              readinessProbe: { httpGet: { path: string } };
              lifecycle: { preStop: { exec: { command: string[] } } };
            }[];
          };
        };
      };
    }
    const docs = parseAllDocuments(readFileSync(KUBERNETES, 'utf8')).map((d) => d.toJS() as Doc);
    const configText = docs.find((d) => d.kind === 'ConfigMap')?.data?.['config.yaml'];
    expect(configText).toBeDefined();
    const pod = docs.find((d) => d.kind === 'Deployment')?.spec?.template.spec;
    const container = pod?.containers[0];
    expect(container?.readinessProbe.httpGet.path).toBe('/readyz');
    const [sleep, seconds] = container?.lifecycle.preStop.exec.command ?? [];
    expect(sleep).toBe('sleep');
    expect((pod?.terminationGracePeriodSeconds ?? 0) * 1000).toBeGreaterThan(Number(seconds) * 1000 + drainBudgetMs(configText!));
  });
});

describe('logrotate snippet', () => {
  const logrotate = spawnSync('logrotate', ['--version']).status === 0;
  it.skipIf(!logrotate)('parses (logrotate -d, with this machine\'s user for sluice)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-logrotate-'));
    const file = path.join(dir, 'sluice');
    writeFileSync(file, readFileSync(LOGROTATE, 'utf8').replaceAll('/var/log/sluice', dir).replace('create 0640 sluice sluice', 'create 0640 root root'));
    const checked = spawnSync('logrotate', ['-d', '--state', path.join(dir, 'state'), file], { encoding: 'utf8' });
    expect(checked.stderr).not.toMatch(/^error:/m);
    expect(checked.status).toBe(0);
  });
});
