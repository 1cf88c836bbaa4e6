import { refusalExitCode, UserError } from '../core/errors.ts';

/**
 * A refusal of the people service: one sentence that names the next step, with the HTTP status and
 * code the server answers it with. Locally (`kport users ...` on the server host) it is a UserError.
 */
export class PeopleError extends UserError {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message, refusalExitCode(status));
    this.name = 'PeopleError';
    this.status = status;
    this.code = code;
  }
}
