/**
 * A secret given as a value on the command line (a join token, an invite code) is in every local
 * user's `ps` and /proc/PID/cmdline for as long as the process runs. This rewrites the process
 * title with the value as `***`: on Linux, Node writes the title over the argv memory that
 * /proc/PID/cmdline shows, so the value is gone from both (the test of `discover run --token` reads
 * that file). It was visible until now, and the shell's history keeps it: the caller says so.
 * Returns whether the value was on the command line.
 */
export function hideArgvValue(flag: string, value: string): boolean {
  const at = process.argv.findIndex((a, i) => i > 1 && (a === value || a === `${flag}=${value}`));
  if (at < 0) return false;
  const shown = process.argv.slice(2).map((a, i) => (i + 2 !== at ? a : a.startsWith(`${flag}=`) ? `${flag}=***` : '***'));
  process.title = ['kport', ...shown].join(' ');
  return true;
}
