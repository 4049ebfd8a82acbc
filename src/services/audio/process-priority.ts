import { getPriority, setPriority } from 'node:os';

/**
 * Runs a process we started at a lower CPU priority than ours: its nice value becomes ours plus `increment` (as
 * `nice -n`; at most 19; 0 leaves it alone). Lowering a child's priority needs no privilege. Returns the error when
 * the OS refused (e.g. the process is already gone).
 */
export function lowerProcessPriority(pid: number, increment: number): Error | undefined {
  if (!(increment > 0)) return undefined;
  try {
    setPriority(pid, Math.min(19, getPriority() + Math.floor(increment)));
    return undefined;
  } catch (err) {
    return err as Error;
  }
}
