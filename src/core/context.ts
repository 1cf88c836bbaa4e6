import type { Writable } from 'node:stream';
import { Logger } from './logger.ts';

/** Everything a command may touch of the outside world; tests build their own. */
export interface Context {
  stdout: Writable;
  stderr: Writable;
  stdoutIsTTY: boolean;
  stderrIsTTY: boolean;
  stdinIsTTY: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  now: () => Date;
  logger: Logger;
  /** Aborted on SIGINT/SIGTERM by the launcher. */
  signal: AbortSignal;
}

export interface ContextInit extends Partial<Omit<Context, 'logger'>> {
  stdout: Writable;
  stderr: Writable;
  debug?: boolean;
}

export function createContext(init: ContextInit): Context {
  const env = init.env ?? {};
  const stderrIsTTY = init.stderrIsTTY ?? false;
  return {
    stdout: init.stdout,
    stderr: init.stderr,
    stdoutIsTTY: init.stdoutIsTTY ?? false,
    stderrIsTTY,
    stdinIsTTY: init.stdinIsTTY ?? false,
    env,
    cwd: init.cwd ?? process.cwd(),
    now: init.now ?? (() => new Date()),
    signal: init.signal ?? new AbortController().signal,
    logger: new Logger(init.stderr, { debug: init.debug ?? false, color: stderrIsTTY && !env.NO_COLOR }),
  };
}
