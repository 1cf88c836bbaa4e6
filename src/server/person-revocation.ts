import { LOCK } from '../people/store.ts';
import { ROLE, USER } from '../resources/role.ts';
import { kindPrefix } from '../resources/resource.ts';
import type { ConnectionGuard, PersonCaller } from './connections.ts';
import { asRefusal } from './people-routes.ts';
import type { WatchHub } from './watch-hub.ts';

/** Every person's open connections are checked again this often: what a watch missed (a feed reopened) ends by then. */
export const RECHECK_MS = 30_000;

export interface PersonRevocationDeps {
  hub: WatchHub;
  guard: ConnectionGuard;
  /** The per-call check of a person (PeopleRoutes.person): throws a Refusal when they may no longer call. */
  check: (caller: PersonCaller) => Promise<unknown>;
  log: (line: string) => void;
  /** Open Kubernetes requests decided again by the person's current roles (KubeRoutes.recheck). */
  kube?: { recheck(person?: string): Promise<void> };
  recheckMs?: number;
}

/**
 * Ends a person's open connections when they may no longer call: locked (`users lock`), removed
 * (`users rm`) or added again as another user. A call is checked when it starts, but a
 * `kubectl exec`, a watch or a port-forward runs for as long as the person keeps it, so a change to
 * their user or lock record (a shared watch, WatchHub) checks their connections again at once, and
 * every connection of every person is checked every RECHECK_MS. Each refused connection is dropped
 * (its HTTP/2 streams, an upgraded exec socket, a watch), with the refusal as the reason a
 * session's end records. A change to a role (or to a user's roles) decides every open Kubernetes
 * request again by the roles as stored now, and ends those no longer allowed (KubeRoutes.recheck).
 * A store that cannot answer ends nothing: the next look decides.
 */
export class PersonRevocation {
  readonly #deps: PersonRevocationDeps;
  readonly #unsubscribe: Array<() => void>;
  readonly #timer: NodeJS.Timeout;

  constructor(deps: PersonRevocationDeps) {
    this.#deps = deps;
    const users = kindPrefix(USER);
    this.#unsubscribe = [deps.hub.subscribe(users, (event) => void this.recheck((event.type === 'put' ? event.item.key : event.key).slice(users.length)))];
    // A lock is keyed by the name in lower case and may follow an OIDC subject under another name:
    // everyone's connections are checked against it (locks are rare; the check is a read or two each).
    this.#unsubscribe.push(deps.hub.subscribe(kindPrefix(LOCK), (event) => void (event.type === 'put' && this.recheck())));
    // A role edited or removed may take a cluster from anyone who holds it: every open Kubernetes request is decided again.
    this.#unsubscribe.push(deps.hub.subscribe(kindPrefix(ROLE), () => void this.#kube()));
    this.#timer = setInterval(() => void this.recheck(), deps.recheckMs ?? RECHECK_MS).unref();
  }

  /** Checks `person`'s connections (every person's without one) and drops those refused. */
  async recheck(person?: string): Promise<void> {
    let failed: Error | undefined;
    await Promise.all(this.#deps.guard.ofPeople(person).map(async (connection) => {
      try {
        await this.#deps.check(connection.caller as PersonCaller);
      } catch (err) {
        const refusal = asRefusal(err);
        if (refusal) connection.drop(`the server closed the connection: ${refusal.message}`);
        else failed = err as Error;
      }
    }));
    await this.#kube(person);
    if (failed) this.#deps.log(JSON.stringify({ level: 'warn', msg: `could not check people's open connections again (the next look does): ${failed.message}` }));
  }

  async #kube(person?: string): Promise<void> {
    await this.#deps.kube?.recheck(person).catch((err: Error) => {
      this.#deps.log(JSON.stringify({ level: 'warn', msg: `could not check open Kubernetes requests again (the next look does): ${err.message}` }));
    });
  }

  close(): void {
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    clearInterval(this.#timer);
  }
}
