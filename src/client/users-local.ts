import { UserError } from '../core/errors.ts';
import type { Session } from '../core/session.ts';
import type { UsersService } from './users.ts';

/**
 * `kport users ...` on the server host, with the server's config: the server's people service
 * (src/people/) on the local store. Wired when the server side lands.
 */
export async function localUsers(session: Session): Promise<UsersService> {
  await session.backend();
  throw new UserError('kport users needs a kport server of this version: run it with a login (kport login), or on the server with its config.');
}
