/**
 * Resource use of a process tree read from /proc: resident memory and CPU time. CPU time
 * spent per request is the bench's least noisy number on a shared machine: other tenants
 * slow a proxy down, but barely change how much CPU it burns per request.
 */
import { readFileSync } from 'node:fs';
import { descendantPids } from './procs.ts';

const PAGE_KB = 4;
/** USER_HZ: the unit of utime/stime in /proc/PID/stat (100 on every Linux we run on). */
const TICKS_PER_SECOND = 100;

function treePids(root: number): number[] {
  return [root, ...descendantPids(root)];
}

/** Resident set size in KiB of `root` and every process below it. */
export function rssKiB(root: number): number {
  let total = 0;
  for (const pid of treePids(root)) {
    try {
      // statm: size resident shared text lib data dt (pages)
      const fields = readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ');
      total += Number(fields[1]) * PAGE_KB;
    } catch {
      // Exited while we looked.
    }
  }
  return total;
}

/** User + system CPU seconds used so far by `root` and every process below it. */
export function cpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of treePids(root)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command name, which may hold spaces, start after the last ')'.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
      ticks += Number(rest[11]) + Number(rest[12]);
    } catch {
      // Exited while we looked.
    }
  }
  return ticks / TICKS_PER_SECOND;
}

/** The 1-minute load average, as a rough record of how busy the shared machine was. */
export function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}

/** Busy fraction of all cores between two readings of /proc/stat (all tenants together). */
export interface CpuSample {
  readonly busy: number;
  readonly total: number;
}

export function machineCpu(): CpuSample {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  const total = values.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

export function busyFraction(from: CpuSample, to: CpuSample): number {
  const total = to.total - from.total;
  return total > 0 ? (to.busy - from.busy) / total : 0;
}
