import { constants } from 'node:os';
import { ExitCode } from './errors.ts';

/**
 * The exit code of a command that a signal stopped (README "Exit codes"). A long-running service
 * (`discover run`, `server start`) that SIGTERM or SIGHUP asked to stop, and that stopped cleanly,
 * ends as asked: 0, as systemd expects of a service it stops. Ctrl-C is always 130, as shells report
 * it. A run with an end of its own (`--once`) stopped before that end is 128 + the signal's number
 * (130 SIGINT, 143 SIGTERM, 129 SIGHUP): never 0, so a killed cron job or CI step does not look done.
 */
export function stoppedExitCode(signal: AbortSignal, opts: { service: boolean }): number {
  const name = stopSignal(signal);
  if (name === 'SIGINT') return ExitCode.interrupted;
  return opts.service ? ExitCode.ok : 128 + (constants.signals[name as NodeJS.Signals] ?? 2);
}

/** The signal the launcher aborted with (its reason is `Error(name)`); SIGINT for any other abort. */
function stopSignal(signal: AbortSignal): string {
  const name = (signal.reason as Error | undefined)?.message;
  return name === 'SIGTERM' || name === 'SIGHUP' ? name : 'SIGINT';
}
