/**
 * Command-line entry: `sluice run --config FILE`, `sluice validate --config FILE` and
 * `sluice ctl …` (admin API client, src/ctl.ts).
 * Exit codes: 0 success, 1 invalid config or startup failure, 2 usage error.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from './shared/config/load.ts';
import { CTL_USAGE, runCtl } from './ctl.ts';
import { SluiceError } from './shared/errors.ts';
import { createLogger, flushLogs } from './shared/logger.ts';
import { Supervisor, workerCount } from './supervisor.ts';

const USAGE = `usage:
  sluice run --config FILE [--log-level LEVEL] [--takeover]
      run the daemon; with --takeover, take the ports over from a running Sluice
      (zero-downtime deploy: see README "Rolling deploys")
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

function validate(args: string[]): void {
  const { file } = configFileArg(args);
  const config = loadConfig(file);
  const backends = config.clusters.reduce((n, c) => n + c.backends.length, 0);
  process.stdout.write(
    `${file}: ok (${config.listeners.length} listeners, ${config.clusters.length} clusters, ${backends} backends, ${workerCount(config.workers)} workers)\n`,
  );
}

async function run(args: string[]): Promise<void> {
  const { file, logLevel, takeover } = configFileArg(args);
  const config = loadConfig(file);
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
  await supervisor.start();
  // Whatever started the drain (a signal, POST /drain, a handover), the process ends with it.
  await supervisor.stopped;
  process.exit(0);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run':
      return run(rest);
    case 'validate':
      validate(rest);
      return;
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
