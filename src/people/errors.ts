import { UserError } from '../core/errors.ts';

/**
 * A refusal of the people service: one sentence that names the next step, with the HTTP status and
 * code the server answers it with. Locally (`kport users ...` on the server host) it is a UserError.
 */
export class PeopleError extends UserError {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message, status === 401 || status === 403 ? 4 : status === 400 ? 2 : 1);
    this.name = 'PeopleError';
    this.status = status;
    this.code = code;
  }
}
