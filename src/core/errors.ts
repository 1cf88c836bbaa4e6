// The error taxonomy (docs/style.md 11). Every message is one sentence that names the next step.

/**
 * README "Exit codes", one code per kind of failure (as tctl and kubectl, a thing that does not
 * exist is a failure, 1, not a usage error):
 * - failure: a call failed, a server is unreachable, a name or id that nothing has (not found);
 * - usage: a command, flag, argument, name or file that is not what it must be, a config error;
 * - credentials: credentials missing, expired or refused (AWS, Kubernetes, a join token, a login,
 *   a role that does not allow the call).
 */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  credentials: 4,
  interrupted: 130,
} as const;

/**
 * The exit code of a kport server's refusal, by its HTTP status, so a command says the same through
 * a server as on the store: 400 (and 413, 422) the input, 401 and 403 who may do it, anything else
 * (404 not found, 409, 429, 5xx) a failure.
 */
export function refusalExitCode(status: number): number {
  if (status === 400 || status === 413 || status === 422) return ExitCode.usage;
  if (status === 401 || status === 403) return ExitCode.credentials;
  return ExitCode.failure;
}

export class KportError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number, options?: ErrorOptions) {
    super(message, options);
    this.exitCode = exitCode;
  }
}

/** Expected problems caused by the user's input: printed as the message only. */
export class UserError extends KportError {
  constructor(message: string, exitCode: number = ExitCode.failure, options?: ErrorOptions) {
    super(message, exitCode, options);
    this.name = 'UserError';
  }
}

/** Bad flags, arguments or configuration. */
export class UsageError extends UserError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.usage, options);
    this.name = 'UsageError';
  }
}

/** A failed call to something outside kport (AWS, Kubernetes, a child process). */
export class ExternalError extends KportError {
  readonly call: string;
  constructor(call: string, message: string, exitCode: number = ExitCode.failure, options?: ErrorOptions) {
    super(message, exitCode, options);
    this.name = 'ExternalError';
    this.call = call;
  }
}

/** Missing or rejected AWS or Kubernetes credentials. */
export class CredentialsError extends ExternalError {
  constructor(call: string, message: string, options?: ErrorOptions) {
    super(call, message, ExitCode.credentials, options);
    this.name = 'CredentialsError';
  }
}

/** Something kport got wrong. */
export class BugError extends KportError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.failure, options);
    this.name = 'BugError';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const SYSTEM_CAUSES: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'it is a directory',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this machine',
};

const SYSTEM_NEXT: Record<string, string> = {
  EACCES: 'use a data dir you can write (teleport.data_dir or --data-dir)',
  EPERM: 'use a data dir you can write (teleport.data_dir or --data-dir)',
  EROFS: 'use a data dir on a writable file system (teleport.data_dir or --data-dir)',
  ENOSPC: 'free some space and run again',
  EDQUOT: 'free some space and run again',
  EMFILE: 'raise the open-file limit (ulimit -n) and run again',
};

/**
 * The cause part of an operating-system failure (a Node.js system error: it has a code and a
 * syscall): "read-only file system (EROFS); use a data dir on a writable file system ...";
 * undefined for anything else. Callers put it after what they were doing.
 */
export function systemCause(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException;
  if (!e || typeof e !== 'object' || typeof e.code !== 'string' || typeof e.syscall !== 'string' || !(e.code in SYSTEM_CAUSES)) return undefined;
  const next = SYSTEM_NEXT[e.code];
  return `${SYSTEM_CAUSES[e.code]} (${e.code})${next ? `; ${next}` : ''}`;
}

/** One sentence for an operating-system failure, naming the path or port and the cause; undefined for anything else. */
export function describeSystemError(err: unknown): string | undefined {
  const cause = systemCause(err);
  if (!cause) return undefined;
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e.syscall === 'listen' || e.syscall === 'bind') {
    const where = `${e.address ?? '127.0.0.1'}${e.port !== undefined ? `:${e.port}` : ''}`;
    return e.code === 'EADDRINUSE'
      ? `Cannot listen on ${where}: the port is already in use; pick another with --port, or leave --port out for a free one.`
      : `Cannot listen on ${where}: ${cause}.`;
  }
  const verb =
    {
      mkdir: 'create the directory',
      open: 'open',
      write: 'write',
      rename: 'replace',
      unlink: 'remove',
      read: 'read',
      scandir: 'list',
      link: 'create',
      chmod: 'change the mode of',
    }[e.syscall!] ?? e.syscall;
  return `Cannot ${verb}${e.path ? ` ${e.path}` : ''}: ${cause}.`;
}
