/**
 * Which TCP data path a worker runs: `handles` (libuv stream handles, stream-handle.ts), the
 * default wherever this Node has the bindings it uses, or `net` (net.Socket).
 * SLUICE_DATA_PATH=net|handles chooses; unset means handles. Handles, asked for or by
 * default, on a Node without the bindings run net with a warning (logged once per worker):
 * the bindings are internal and may change in any Node release, and an operator should see
 * that the fallback runs. `npm test` runs every suite on the default and the TCP suites
 * whose behaviour depends on the path again on net (vitest.config.ts).
 */
export type DataPath = 'net' | 'handles';

export const DEFAULT_DATA_PATH: DataPath = 'handles';

export interface DataPathChoice {
  readonly path: DataPath;
  /** Set when the choice differs from what was asked, or the setting was not understood. */
  readonly warning: string | undefined;
}

/** `problem` is stream-handle.ts's bindingProblem, asked only when handles are wanted. */
export function chooseDataPath(setting: string | undefined, problem: () => string | undefined): DataPathChoice {
  const wanted = setting === undefined || setting === '' ? DEFAULT_DATA_PATH : setting;
  if (wanted === 'net') return { path: 'net', warning: undefined };
  if (wanted !== 'handles') {
    return { path: 'net', warning: `SLUICE_DATA_PATH=${wanted} is neither net nor handles; running the net.Socket data path` };
  }
  const missing = problem();
  if (missing === undefined) return { path: 'handles', warning: undefined };
  return { path: 'net', warning: `stream handles unavailable (${missing}); running the net.Socket data path` };
}
