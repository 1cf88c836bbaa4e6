import type { Backend } from '../backend/backend.ts';
import type { RoleConfig } from '../config/schema.ts';
import { USER } from '../resources/role.ts';
import { listResources } from '../resources/store.ts';
import { DEFAULT_INVITE_TTL_MS, createInvite, dropInvites } from './invites.ts';
import { secretsKey, type PersonUser } from './store.ts';
import { addUser } from './users.ts';

export const FIRST_USER = 'admin';
/** The first admin edits kport and reads what happened in it (audit, recordings), as Teleport's first user gets editor and auditor. */
export const FIRST_USER_ROLES = ['editor', 'auditor'];

/**
 * The invite `kport server start` prints while no editor can log in yet: for `admin` (made with
 * FIRST_USER_ROLES) or the editor who has not used theirs. Each start replaces the unspent one, so
 * a lost invite costs a restart; once an editor has set a password (or logged in through OIDC),
 * never again: editors invite people with `kport users add`.
 */
export async function firstUserInvite(
  backend: Backend,
  now: Date,
  configRoles: RoleConfig[] = [],
): Promise<{ user: string; roles: string[]; invite: string; expires: string } | undefined> {
  const editors = (await listResources<PersonUser>(backend, USER))
    .filter((u) => u.spec.roles.includes('editor'))
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  for (const editor of editors) {
    if (editor.spec.auth === 'oidc' || (await backend.get(secretsKey(editor.metadata.name)))) return undefined;
  }
  const waiting = editors.find((e) => (e.spec.auth ?? 'local') === 'local');
  if (!waiting)
    return addUser(backend, { name: FIRST_USER, roles: FIRST_USER_ROLES, configRoles }, now).then(
      (added) => ({ ...added, roles: FIRST_USER_ROLES }),
      () => undefined,
    );
  const user = waiting.metadata.name;
  await dropInvites(backend, user);
  return { user, roles: waiting.spec.roles, ...(await createInvite(backend, user, DEFAULT_INVITE_TTL_MS, now.getTime())) };
}
