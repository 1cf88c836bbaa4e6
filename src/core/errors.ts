// The error taxonomy (STYLE.md 11). Every message is one sentence that names the next step.

export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  credentials: 4,
  interrupted: 130,
} as const;

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
