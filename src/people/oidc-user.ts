import { randomUUID } from 'node:crypto';
import { ApiError } from '../api/errors.ts';
import type { Backend } from '../backend/backend.ts';
import { resourceKey } from '../resources/resource.ts';
import { USER } from '../resources/role.ts';
import { encodeResource } from '../resources/store.ts';
import { checkNotLocked } from './login.ts';
import { claimOp, nameHolder, sameNameProblem } from './names.ts';
import type { OidcSubject, PersonUser } from './store.ts';

/** Concurrent logins that move the same record: each reads it again, a few times, before one gives up. */
const WRITE_TRIES = 3;

/**
 * Records an OIDC person as a user of auth `oidc` with the roles their claims map to, expiring with
 * their certificate, so every call reads their roles and locks as for a local user; answers the
 * name they are known by (the record's, which may differ in case from the claim) and the record's
 * uid for their certificate.
 *
 * The record is bound to the provider's `iss` and `sub` at its first login, as Teleport keys SSO
 * users to their connector and subject: a name is only a claim, which providers let people change
 * or hand on, and two accounts sharing one record would share its roles and its certificates. A
 * login with the same name and another subject is refused. A record from before the binding is
 * bound at its next login with a new uid, so certificates issued before (to whoever it was) stop
 * passing. A local user's name, in any case, is never taken.
 */
export async function oidcUser(
  backend: Backend,
  input: { user: string; roles: string[]; oidc: OidcSubject; expires: Date },
  now: Date,
): Promise<{ user: string; uid: string }> {
  for (let tries = 0; tries < WRITE_TRIES; tries++) {
    const holder = await nameHolder(backend, input.user);
    const existing = holder.user;
    const name = existing?.metadata.name ?? input.user;
    if (existing && (existing.spec.auth ?? 'local') !== 'oidc') {
      const why = name === input.user ? `${input.user} is a local kport user` : `${input.user} names the local kport user ${name} (${sameNameProblem(name)})`;
      throw new ApiError(
        'oidc_name_taken',
        `${why}, so an OIDC login cannot take that name: log in with kport login (password and code), or ask an editor to remove the local user.`,
        { user: input.user },
      );
    }
    const bound = existing?.spec.oidc;
    if (bound && (bound.issuer !== input.oidc.issuer || bound.subject !== input.oidc.subject)) {
      throw new ApiError(
        'oidc_subject_mismatch',
        `the kport user ${name} belongs to another account at the identity provider (the one that first logged in as it), and this account only has the same name: ask the provider's administrator why two accounts are named ${input.user}, or, if the name was handed on, an editor removes the old user first (kport users rm ${name}).`,
        {
          user: input.user,
          reason: `OIDC login refused: ${name} is bound to subject ${bound.subject} of ${bound.issuer}, this login is subject ${input.oidc.subject} of ${input.oidc.issuer}`,
        },
      );
    }
    const ttlMs = Math.max(1000, input.expires.getTime() - now.getTime());
    const uid = (bound && existing?.spec.uid) || randomUUID();
    const record: PersonUser = {
      kind: USER,
      version: 'v2',
      metadata: { name, expires: input.expires.toISOString() },
      spec: { roles: input.roles, auth: 'oidc', created: existing?.spec.created ?? now.toISOString(), uid, oidc: input.oidc },
    };
    // The record as read (or absent) and the claim on its name in any case, or neither.
    const written = await backend.transact([
      { key: resourceKey(USER, name), revision: existing?.metadata.revision ?? 0, value: encodeResource(record), ttlMs },
      claimOp(holder, name, ttlMs),
    ]);
    if (!written) continue;
    // By name, and by the provider's subject: a lock set on this person under an earlier name holds.
    await checkNotLocked(backend, name, now.getTime(), input.oidc);
    return { user: name, uid };
  }
  throw new ApiError('oidc_busy', `other logins as ${input.user} changed its user record at the same moment: run kport login --auth oidc again.`, {
    status: 409,
    user: input.user,
  });
}
