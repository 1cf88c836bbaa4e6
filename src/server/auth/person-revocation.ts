import type { ConnectionLookup, PersonCaller } from '../call/caller.ts';
import { asRefusal } from './people-routes.ts';
import type { PersonRecords } from '../cache/person-records.ts';

/** Every person's open connections are checked again this often: a backstop to the records' own changes. */
export const RECHECK_MS = 30_000;

export interface PersonRevocationDeps {
  /** The records the per-call check reads: their changes are what ends sessions. */
  records: Pick<PersonRecords, 'onChange'>;
  guard: Pick<ConnectionLookup, 'ofPeople'>;
  /** The per-call check of a person (PeopleRoutes.person): throws an ApiError when they may no longer call. */
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
 * their user or lock record (as the records the per-call check reads apply it: person-records.ts)
 * checks their connections again at once, and every connection of every person is checked every
 * RECHECK_MS. Each refused connection is dropped (its HTTP/2 streams, an upgraded exec socket, a
 * watch), with the refusal as the reason a session's end records. A change to a role (or to a
 * user's roles) decides every open Kubernetes request again by the roles as they are now, and ends
 * those no longer allowed (KubeRoutes.recheck). A store that cannot answer ends nothing: the next look decides.
 */
export class PersonRevocation {
  readonly #deps: PersonRevocationDeps;
  readonly #unsubscribe: () => void;
  readonly #timer: NodeJS.Timeout;

  constructor(deps: PersonRevocationDeps) {
    this.#deps = deps;
    this.#unsubscribe = deps.records.onChange((change) => {
      // A role edited or removed may take a cluster from anyone who holds it: every open Kubernetes request is decided again.
      if (change.kind === 'role') void this.#kube();
      // A lock is keyed by the name in lower case and may follow an OIDC subject under another name,
      // and a relist that changed several records (the watch was broken): everyone is checked once.
      else if (change.kind === 'user' && change.names.length === 1) void this.recheck(change.names[0]);
      else void this.recheck();
    });
    this.#timer = setInterval(() => void this.recheck(), deps.recheckMs ?? RECHECK_MS).unref();
  }

  /** Checks `person`'s connections (every person's without one) and drops those refused. */
  async recheck(person?: string): Promise<void> {
    let failed: Error | undefined;
    await Promise.all(
      this.#deps.guard.ofPeople(person).map(async (connection) => {
        try {
          await this.#deps.check(connection.caller as PersonCaller);
        } catch (err) {
          const refusal = asRefusal(err);
          if (refusal) connection.drop(`the server closed the connection: ${refusal.message}`);
          else failed = err as Error;
        }
      }),
    );
    await this.#kube(person);
    if (failed)
      this.#deps.log(JSON.stringify({ level: 'warn', msg: `could not check people's open connections again (the next look does): ${failed.message}` }));
  }

  async #kube(person?: string): Promise<void> {
    await this.#deps.kube?.recheck(person).catch((err: Error) => {
      this.#deps.log(JSON.stringify({ level: 'warn', msg: `could not check open Kubernetes requests again (the next look does): ${err.message}` }));
    });
  }

  close(): void {
    this.#unsubscribe();
    clearInterval(this.#timer);
  }
}
