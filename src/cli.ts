/**
 * Command-line entry: `sluice run --config FILE`, `sluice master --config FILE` (a parent
 * that keeps one PID across upgrades, src/master/master.ts), `sluice validate --config FILE`
 * and `sluice ctl …` (admin API client, src/ctl.ts).
 * Exit codes: 0 success, 1 invalid config or startup failure, 2 usage error.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CTL_USAGE, runCtl } from './ctl.ts';
import { SluiceError } from './shared/errors.ts';
import { createLogger, flushLogs } from './shared/logger.ts';
import { READY_MESSAGE, runMaster } from './master/master.ts';

/**
 * The daemon's modules (Fastify, zod, yaml, prom-client and the supervisor), imported by the
 * commands that use them: `sluice master`, the systemd unit's main PID, only waits on its
 * child and holds ~19 MiB less private memory without them (docs/data-plane-decisions.md, "Process
 * memory at idle").
 */
async function daemonModules() {
  const [capacity, stateFile, load, supervisor] = await Promise.all([
    import('./controlplane/capacity.ts'),
    import('./controlplane/state-file.ts'),
    import('./shared/config/load.ts'),
    import('./supervisor.ts'),
  ]);
  return { ...capacity, ...stateFile, ...load, ...supervisor };
}

const USAGE = `usage:
  sluice run --config FILE [--log-level LEVEL] [--takeover]
      run the daemon; with --takeover, take the ports over from a running Sluice
      (zero-downtime deploy: see docs/operations.md, "Rolling deploys")
  sluice master --config FILE [--log-level LEVEL]
      run the daemon as a child that SIGUSR2 replaces with a new one without downtime,
      keeping this PID (systemd: see docs/operations.md, "Upgrades under systemd")
  sluice validate --config FILE
      check a config file and exit
  sluice ctl COMMAND
      change backends through the admin API (sluice ctl --help)`;

function fail(message: string, code: number): never {
  flushLogs();
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function configFileArg(args: string[]): { file: string; logLevel: string; takeover: boolean } {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string', short: 'c' }, 'log-level': { type: 'string' }, takeover: { type: 'boolean' } },
    strict: true,
  });
  if (values.config === undefined) throw new SluiceError('SLUICE_USAGE', `--config FILE is required\n${USAGE}`);
  return {
    file: values.config,
    logLevel: values['log-level'] ?? process.env['SLUICE_LOG_LEVEL'] ?? 'info',
    takeover: values.takeover === true,
  };
}

async function validate(args: string[]): Promise<void> {
  const { file } = configFileArg(args);
  const { loadConfig, assertConfigFits, workerCount } = await daemonModules();
  const config = loadConfig(file);
  assertConfigFits(config, file);
  const backends = config.clusters.reduce((n, c) => n + c.backends.length, 0);
  process.stdout.write(
    `${file}: ok (${config.listeners.length} listeners, ${config.clusters.length} clusters, ${backends} backends, ${workerCount(config.workers)} workers)\n`,
  );
}

async function run(args: string[]): Promise<void> {
  const { file, logLevel, takeover } = configFileArg(args);
  const { loadConfig, assertConfigFits, peekStateFile, Supervisor } = await daemonModules();
  const config = loadConfig(file);
  // The state file's additions count too: they are started with the file's backends.
  assertConfigFits(config, file, config.state_file === undefined ? undefined : await peekStateFile(config.state_file));
  const supervisor = new Supervisor({ config, configFile: file, logLevel, takeover });
  let stopSignals = 0;
  const onStopSignal = (signal: NodeJS.Signals): void => {
    stopSignals++;
    if (stopSignals > 1) fail(`sluice: second ${signal}: exiting at once`, 1);
    void supervisor.drain();
  };
  process.on('SIGTERM', onStopSignal);
  process.on('SIGINT', onStopSignal);
  process.on('SIGHUP', () => void supervisor.reload());
  process.on('SIGUSR1', () => void supervisor.reopenAccessLog());
  // Under `sluice master` (an IPC channel), SIGUSR2 means "upgrade" to the master; a
  // `systemctl kill` without --kill-whom=main sends it here too, where by default it would kill.
  if (process.send !== undefined) process.on('SIGUSR2', () => undefined);
  await supervisor.start();
  // Under `sluice master`: the signal that makes this process the one in charge. The
  // callback keeps a master that is already gone from turning into an 'error' that ends us.
  process.send?.(READY_MESSAGE, undefined, {}, () => undefined);
  // Whatever started the drain (a signal, POST /drain, a handover), the process ends with it.
  await supervisor.stopped;
  process.exit(0);
}

async function master(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, 'log-level': { type: 'string' } }, strict: true });
  if (values.config === undefined) throw new SluiceError('SLUICE_USAGE', `--config FILE is required\n${USAGE}`);
  // The path this file was started from, not its real path: after a deploy that swaps a
  // symlinked install directory, the next child runs the new files.
  const sluiceBin = path.join(path.dirname(process.argv[1] ?? ''), '..', 'bin', 'sluice');
  const logLevel = values['log-level'] ?? process.env['SLUICE_LOG_LEVEL'] ?? 'info';
  process.exit(await runMaster({ configFile: path.resolve(values.config), logLevel, sluiceBin }));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run':
      return run(rest);
    case 'master':
      return master(rest);
    case 'validate':
      return validate(rest);
    case 'ctl': {
      // Not an admin API call: it talks to etcd and runs until SIGTERM (docs/fleet.md).
      // Imported here so that other commands do not load the etcd client (gRPC).
      if (rest[0] === 'register') {
        const { parseRegisterArgs, REGISTER_USAGE, runRegistration } = await import('./controlplane/registry/registration.ts');
        if (rest.includes('--help')) return void process.stdout.write(`${REGISTER_USAGE}\n`);
        const { config, request } = parseRegisterArgs(rest.slice(1));
        process.exitCode = await runRegistration(config, request, { log: createLogger('info', { component: 'register' }) });
        flushLogs();
        return;
      }
      if (rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(`${CTL_USAGE}\n`);
        return;
      }
      const { output, code } = await runCtl(rest);
      (code === 0 ? process.stdout : process.stderr).write(`${output}\n`);
      process.exitCode = code;
      return;
    }
    case undefined:
    case '-h':
    case '--help':
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      throw new SluiceError('SLUICE_USAGE', `unknown command "${command}"\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof SluiceError) fail(`sluice: ${error.message}`, error.code === 'SLUICE_USAGE' ? 2 : 1);
  if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) fail(`sluice: ${error.message}\n${USAGE}`, 2);
  fail(`sluice: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, 1);
});
