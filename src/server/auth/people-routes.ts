// The people half of the server's API (docs/people.md "Wire API"): logins, who am I, users, and the
// per-call check of a person's certificate. server.ts binds these to their routes (src/api/routes.ts).
import { routes, type ParsedRequestOf, type Routes } from '../../api/routes.ts';
import type { Identity, InviteBegun } from '../../api/wire.ts';
import type { Backend } from '../../backend/backend.ts';
import { ApiError } from '../../api/errors.ts';
import type { RoleConfig } from '../../config/schema.ts';
import { inviteBegin, inviteFinish, localLogin, lockedMessage, type LoginDeps } from '../../people/login.ts';
import { oidcUser } from '../../people/oidc-user.ts';
import type { PersonUser } from '../../people/store.ts';
import { LoginThrottle, MAX_BACKOFF_MS, type ThrottleAlert } from '../../people/throttle.ts';
import { addUser, listUsers, lockUser, removeUser, resetUser, unlockUser, updateUser } from '../../people/users.ts';
import { CLOCK_SKEW_MS, certPem, issueLeaf, verifiedCsrKey } from '../../pki/certs.ts';
import { RoleSet } from '../../roles/evaluate.ts';
import type { RoleV7 } from '../../resources/role.ts';
import type { Authorities } from './authorities.ts';
import type { ServerAudit } from '../events/audit.ts';
import type { PersonCaller } from '../call/caller.ts';
import type { OidcLogin } from './oidc.ts';
import { oidcBegin, oidcCallback, oidcFinish } from './oidc-routes.ts';
import { sourceKey } from '../call/limits.ts';
import { PersonPolicy } from './person-policy.ts';
import type { PersonRecords } from '../cache/person-records.ts';

/** A user certificate's lifetime unless the person's roles' max_session_ttl is shorter (Teleport's default too). */
export const DEFAULT_USER_CERT_TTL_MS = 12 * 3_600_000;
const MAX_CSR_CHARS = 2_048;

export interface PeopleDeps {
  backend: Backend;
  authorities: Authorities;
  sealKey: Buffer;
  audit: ServerAudit;
  configRoles: RoleConfig[];
  now: () => Date;
  oidc?: OidcLogin;
  /** The user records, locks and roles every person's call is checked against (kept from the store's watch). */
  records: PersonRecords;
}

/** A person whose certificate passed this call's checks, with their current roles. */
export interface Person {
  caller: PersonCaller;
  user: PersonUser;
  roles: RoleSet;
  policy: PersonPolicy;
}

/** Any refusal of the people service as the server answers it. */
export function asRefusal(err: unknown): ApiError | undefined {
  return err instanceof ApiError ? err : undefined;
}

export class PeopleRoutes {
  readonly #deps: PeopleDeps;
  readonly #login: LoginDeps;

  constructor(deps: PeopleDeps) {
    this.#deps = deps;
    const throttle = new LoginThrottle({ now: () => deps.now().getTime(), alert: (alert) => void this.#throttled(alert) });
    this.#login = { backend: deps.backend, sealKey: deps.sealKey, throttle, now: deps.now };
  }

  /** `/v1/login/invite/begin`: who the invite is for and the TOTP secret to enroll; allowed logins are audited here (refusals by the router). */
  async inviteBegin(input: ParsedRequestOf<Routes['inviteBegin']>, address: string): Promise<InviteBegun> {
    const begun = await inviteBegin(this.#login, input);
    await this.#audited(routes.inviteBegin.audit.allowed, begun.user, [], 'login invite begin', address);
    return begun;
  }

  async inviteFinish(input: ParsedRequestOf<Routes['inviteFinish']>, address: string, remoteIp: string | undefined): Promise<Identity> {
    const key = await csrKey(input.csr);
    return this.#identity(await inviteFinish(this.#login, input, sourceKey(remoteIp)), key, 'login invite finish', address);
  }

  async localLogin(input: ParsedRequestOf<Routes['localLogin']>, address: string, remoteIp: string | undefined): Promise<Identity> {
    const key = await csrKey(input.csr);
    return this.#identity(await localLogin(this.#login, input, sourceKey(remoteIp)), key, 'login local', address);
  }

  oidcBegin(input: ParsedRequestOf<Routes['oidcBegin']>, remoteIp: string | undefined): Promise<{ auth_url: string; attempt: string; secret: string }> {
    return oidcBegin(this.#deps.oidc, input, sourceKey(remoteIp));
  }

  async oidcFinish(input: ParsedRequestOf<Routes['oidcFinish']>, address: string): Promise<Identity> {
    const { user: claimed, roles, oidc, csr } = await oidcFinish(this.#deps.oidc, input);
    const key = await csrKey(csr);
    const ttl = await this.#ttl(roles);
    const { user, uid } = await oidcUser(
      this.#deps.backend,
      { user: claimed, roles, oidc, expires: new Date(this.#deps.now().getTime() + ttl) },
      this.#deps.now(),
    );
    return this.#identity({ user, roles, uid }, key, 'login oidc', address);
  }

  /** The browser's return from the identity provider: where it goes next; the outcome is audited. */
  async callback(query: URLSearchParams, address: string): Promise<string> {
    const { location, user, roles, refusal } = await oidcCallback(this.#deps.oidc, query);
    const named = user ?? refusal?.user;
    if (refusal)
      await this.#deps.audit.record({
        type: 'user.login',
        outcome: 'refused',
        ...(named && { user: named }),
        action: 'login oidc callback',
        reason: refusal.message,
        remote_addr: address,
      });
    else if (user) await this.#audited(routes.oidcCallback.audit.allowed, user, roles ?? [], 'login oidc callback', address);
    return location;
  }

  /**
   * Every call of a person: certificate unexpired, user still there (and the same user), not locked;
   * their current roles. Read from the records the store's watch keeps (person-records.ts), not the
   * store; `asOf`: records at least as new as that store revision (an event about to reach them).
   */
  async person(caller: PersonCaller, asOf?: number): Promise<Person> {
    const at = this.#deps.now().getTime();
    if (at >= caller.notAfter) throw new ApiError('cert_expired', `your kport login expired at ${new Date(caller.notAfter).toISOString()}: run kport login`);
    const view = await this.#deps.records.view(asOf);
    const user = view.user(caller.person);
    if (!user) throw new ApiError('user_removed', `user ${caller.person} no longer exists at this server (kport users rm): ask an editor to add you again`);
    // A certificate issued before `users reset`, or to an earlier user of that name (removed, then
    // added again, or an OIDC record bound since to its provider account), names another uid.
    if (user.spec.uid !== caller.uid)
      throw new ApiError(
        'login_revoked',
        `this login of ${caller.person} was revoked at this server (kport users reset, or the user was removed or replaced since it was issued): run kport login again (a local user with the invite an editor sends)`,
      );
    const lock = view.lock(caller.person, at);
    if (lock) throw new ApiError('user_locked', lockedMessage(caller.person, lock.metadata.expires, lock.spec.message));
    const roles = roleSet(view.roles, user.spec.roles, caller.person);
    return { caller, user, roles, policy: new PersonPolicy(caller.person, roles) };
  }

  async whoami(person: Person): Promise<unknown> {
    return {
      user: person.caller.person,
      roles: person.user.spec.roles,
      expires: new Date(person.caller.notAfter).toISOString(),
      kube_roles: person.roles.roles,
    };
  }

  /** `/v1/users`: add, ls, rm, update, reset, lock, unlock, each by the person's current roles, audited with who and from where. */
  async users(person: Person, body: unknown, address: string): Promise<unknown> {
    const input = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const { backend, now, configRoles } = this.#deps;
    const actor = { audit: this.#deps.audit, user: person.caller.person, remote_addr: address };
    const need = (resource: string, verb: 'list' | 'create' | 'update' | 'delete') => {
      if (!person.roles.allows(resource, verb))
        throw new ApiError(
          'forbidden',
          `user ${person.caller.person} (${person.user.spec.roles.join(', ')}) may not ${verb} ${resource} resources (no role allows it)`,
        );
    };
    const name = () => {
      if (typeof input.name !== 'string') throw new ApiError('bad_request', 'this call needs name (a string)');
      return input.name;
    };
    switch (input.op) {
      case 'add': {
        need('user', 'create');
        const ttl = input.invite_ttl_ms;
        if (ttl !== undefined && typeof ttl !== 'number') throw new ApiError('bad_request', 'invite_ttl_ms is a number');
        const added = await addUser(
          backend,
          { name: name(), roles: input.roles as string[], ...(ttl !== undefined && { inviteTtlMs: ttl }), configRoles },
          now(),
          actor,
        );
        return { user: added.user, invite: added.invite, invite_expires: added.expires };
      }
      case 'ls':
        need('user', 'list');
        return { users: await listUsers(backend, now()) };
      case 'rm': {
        need('user', 'delete');
        const target = name();
        if (!(await removeUser(backend, target, actor))) throw new ApiError('no_such_user', `there is no user ${target}: see kport users ls`);
        return {};
      }
      case 'update': {
        need('user', 'update');
        const change = { set: input.set_roles, add: input.add_roles, remove: input.remove_roles } as Record<string, string[] | undefined>;
        return updateUser(backend, { name: name(), change, configRoles }, now(), actor);
      }
      case 'reset': {
        need('user', 'update');
        const ttl = input.invite_ttl_ms;
        if (ttl !== undefined && typeof ttl !== 'number') throw new ApiError('bad_request', 'invite_ttl_ms is a number');
        const reset = await resetUser(backend, { name: name(), ...(ttl !== undefined && { inviteTtlMs: ttl }) }, now(), actor);
        return { user: reset.user, invite: reset.invite, invite_expires: reset.expires };
      }
      case 'lock': {
        need('lock', 'create');
        const ttl = input.ttl_ms;
        if ((ttl !== undefined && typeof ttl !== 'number') || (input.message !== undefined && typeof input.message !== 'string'))
          throw new ApiError('bad_request', 'ttl_ms is a number and message a string');
        return lockUser(
          backend,
          { name: name(), ...(ttl !== undefined && { ttlMs: ttl }), ...(input.message !== undefined && { message: input.message as string }) },
          now(),
          actor,
        );
      }
      case 'unlock': {
        need('lock', 'delete');
        const target = name();
        if (!(await unlockUser(backend, target, now(), actor))) throw new ApiError('not_locked', `user ${target} is not locked: see kport get lock`);
        return {};
      }
      default:
        throw new ApiError('bad_request', `op is one of add, ls, rm, update, reset, lock, unlock (got ${JSON.stringify(input.op ?? null)})`);
    }
  }

  /** 12 h, or the shortest max_session_ttl of the roles, and never past the user CA's own expiry. */
  async #ttl(roles: string[]): Promise<number> {
    const set = roleSet((await this.#deps.records.view()).roles, roles, '');
    const caLeft = this.#deps.authorities.user.cert.notAfter.getTime() - this.#deps.now().getTime() - CLOCK_SKEW_MS;
    return Math.max(1000, Math.min(set.maxSessionTtlMs(DEFAULT_USER_CERT_TTL_MS), caLeft));
  }

  async #identity(
    who: { user: string; roles: string[]; uid?: string },
    key: Awaited<ReturnType<typeof csrKey>>,
    action: string,
    address: string,
  ): Promise<Identity> {
    const ttl = await this.#ttl(who.roles);
    const cert = await issueLeaf(this.#deps.authorities.user, key, {
      commonName: who.user,
      usage: 'client',
      validForMs: ttl,
      user: { roles: who.roles, ...(who.uid && { uid: who.uid }) },
    });
    await this.#audited('user.login', who.user, who.roles, action, address);
    return { user: who.user, roles: who.roles, cert: certPem(cert), ca: this.#deps.authorities.server_tls.certPem, expires: cert.notAfter.toISOString() };
  }

  /** A login throttle's wait beginning (or reaching its longest): an alert in the audit trail, naming the user and the address the last failure came from. */
  async #throttled(alert: ThrottleAlert): Promise<void> {
    const minutes = Math.round(alert.waitMs / 60_000);
    const reason =
      alert.scope === 'pair'
        ? `${alert.failures} failed logins for user ${alert.user} from ${alert.source}: its next attempts from there wait ${minutes} min, twice as long after each failure (at most ${MAX_BACKOFF_MS / 60_000} min)`
        : `${alert.failures} failed logins for user ${alert.user} from ${alert.sources} address(es): attempts from addresses it has not logged in from lately wait ${minutes} min, twice as long after each failure (at most ${MAX_BACKOFF_MS / 60_000} min); someone may be guessing its password or code`;
    await this.#deps.audit.record({
      type: 'user.login.throttled',
      outcome: 'refused',
      user: alert.user,
      action: 'login local',
      reason,
      remote_addr: alert.source,
    });
  }

  async #audited(type: string, user: string, roles: string[], action: string, address: string): Promise<void> {
    await this.#deps.audit.record({ type, outcome: 'allowed', user, ...(roles.length > 0 && { roles }), action, remote_addr: address });
  }
}

function roleSet(definitions: ReadonlyMap<string, RoleV7>, names: string[], user: string): RoleSet {
  return new RoleSet(
    names.flatMap((n) => definitions.get(n) ?? []),
    user,
  );
}

async function csrKey(csr: unknown) {
  const key = typeof csr === 'string' && csr.length <= MAX_CSR_CHARS ? await verifiedCsrKey(csr) : undefined;
  if (!key) throw new ApiError('bad_request', 'csr must be a PEM certificate request for an ECDSA P-256 key, signed by that key: kport login makes one.');
  return key;
}
