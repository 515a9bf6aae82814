/**
 * Which TCP data path a worker runs: `net` (net.Socket), or `handles` (libuv stream handles,
 * stream-handle.ts) where this Node has the bindings it uses. SLUICE_DATA_PATH=net|handles
 * chooses; unset means net for now. Handles lost a backend's last bytes before its reset
 * when the client had half-closed (a failed shutdown was reported before the unread bytes;
 * fixed in stream-handle.ts, 0 failures in 20 runs after 4 in 8 before); it becomes the
 * default once the TCP suites have run clean on it a few times
 * (`npx vitest run --config vitest.handles-path.config.ts`). Asking for handles on a Node
 * without them runs net, with a warning (logged once per worker).
 */
export type DataPath = 'net' | 'handles';

export const DEFAULT_DATA_PATH: DataPath = 'net';

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
