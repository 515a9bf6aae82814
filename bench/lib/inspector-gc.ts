/**
 * A full garbage collection in another Node process's main thread, through its inspector
 * (started with `--inspect=127.0.0.1:0`): the soak reads the main thread's heap after it,
 * so that two readings compare live data rather than two points of the GC cycle.
 */
import { readFileSync } from 'node:fs';

/** The inspector's WebSocket URL from the process's log (`Debugger listening on ws://…`). */
export function inspectorUrl(logText: string): string | undefined {
  return /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/.exec(logText)?.[1];
}

export function inspectorUrlFromLog(logFile: string): string {
  const url = inspectorUrl(readFileSync(logFile, 'utf8'));
  if (url === undefined) throw new Error(`no "Debugger listening on ws://..." line in ${logFile}`);
  return url;
}

/** Connect, ask for HeapProfiler.collectGarbage, wait for its answer, disconnect. */
export async function collectGarbage(url: string, timeoutMs = 30_000): Promise<void> {
  const socket = new WebSocket(url);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from the inspector at ${url} within ${timeoutMs} ms`)), timeoutMs);
      socket.addEventListener('error', () => {
        clearTimeout(timer);
        reject(new Error(`inspector at ${url}: connection failed`));
      });
      socket.addEventListener('open', () => socket.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' })));
      socket.addEventListener('message', (event: MessageEvent) => {
        const message = JSON.parse(String(event.data)) as { id?: number };
        if (message.id !== 1) return;
        clearTimeout(timer);
        resolve();
      });
    });
  } finally {
    socket.close();
  }
}
