/**
 * Run a load-generating tool to completion with a hard time bound, and collect its output.
 * The tool is killed by its pid if it overruns; a bench run never waits forever.
 */
import { spawn } from 'node:child_process';

export interface ToolResult {
  readonly code: number | string;
  readonly stdout: string;
  readonly stderr: string;
}

export function runTool(command: string, args: readonly string[], timeoutMs: number): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} overran ${timeoutMs} ms and was killed`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? 'unknown', stdout, stderr });
    });
  });
}
