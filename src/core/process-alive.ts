import { readFileSync } from 'node:fs';

/**
 * Whether a kport process with this pid still runs on this machine. A pid that exists but runs
 * something else (reused after a reboot) does not count, where /proc can tell.
 */
export function kportProcessAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('kport');
  } catch {
    return true;
  }
}
