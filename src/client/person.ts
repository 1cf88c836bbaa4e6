import { AccessDeniedError } from '../backend/backend.ts';
import { ExitCode, refusalExitCode, UserError } from '../core/errors.ts';
import type { KubeAccess } from '../roles/evaluate.ts';
import { checkCredential, checkProfilePermissions, currentProfile, kportHome, type Profile } from './profile.ts';
import { ApiError, type ApiErrorCode } from '../api/errors.ts';
import { routes, type RequestOf, type ResponseOf, type Route } from '../api/routes.ts';
import type { Whoami } from '../api/wire.ts';
import { neverSent, parseServerAddress, ServerClient } from './server-client.ts';
import { RemoteBackend } from './remote-backend.ts';
import { RetryBudget } from './retry-budget.ts';

/**
 * Where a command that manages resources runs (README "Logging in"): through the server of the
 * current profile, unless the command names a local store (-c, KPORT_CONFIG, --data-dir) or
 * there is no profile to use (never logged in, or logged out). Commands that run the store
 * themselves (server start, discover run) never use a profile.
 */
export type Where =
  | { via: 'local'; why: string }
  | { via: 'server'; why: string; profile: Profile & { credential: NonNullable<Profile['credential']> }; expires: Date };

export interface WhereInput {
  env: NodeJS.ProcessEnv;
  config?: string;
  dataDir?: string;
  /** The command runs the store itself. */
  localStore?: boolean;
}

export function decideWhere(input: WhereInput): Where {
  if (input.localStore) return { via: 'local', why: 'this command runs the store itself' };
  if (input.config !== undefined) return { via: 'local', why: `-c ${input.config} names a config, so its store is used` };
  if (input.env.KPORT_CONFIG) return { via: 'local', why: `KPORT_CONFIG names a config (${input.env.KPORT_CONFIG}), so its store is used` };
  if (input.dataDir !== undefined) return { via: 'local', why: `--data-dir ${input.dataDir} names a local store` };
  const home = kportHome(input.env);
  const profile = currentProfile(home);
  if (!profile) return { via: 'local', why: `no profile in ${home} (kport login --proxy HOST:PORT to use a server)` };
  if (!profile.credential) return { via: 'local', why: `logged out of ${profile.proxy} (kport login to log in again)` };
  checkProfilePermissions(home, profile);
  const { expires, matches } = checkCredential(profile.credential);
  if (!matches)
    throw new UserError(`The key in ${profile.dir} is not the one its certificate was issued for: run kport login --proxy ${profile.proxy} again.`, 4);
  return {
    via: 'server',
    why: `logged in to ${profile.proxy} as ${profile.user} (profile ${profile.dir})`,
    profile: profile as Extract<Where, { via: 'server' }>['profile'],
    expires,
  };
}

export const EXPIRED = 'your kport login expired: run kport login';

export type { Whoami };

/** A person's connection to the server of their profile: the client with their certificate and a Backend over it. */
export class PersonClient {
  readonly where: Extract<Where, { via: 'server' }>;
  readonly client: ServerClient;
  readonly backend: RemoteBackend;
  readonly #retry: RetryBudget;
  #whoami?: Promise<Whoami>;

  constructor(where: Extract<Where, { via: 'server' }>, opts: { now: Date; signal: AbortSignal; warn: (message: string) => void }) {
    if (where.expires.getTime() <= opts.now.getTime())
      throw new UserError(`${EXPIRED} --proxy ${where.profile.proxy} (it expired at ${where.expires.toISOString()}).`, 4);
    this.where = where;
    const { profile } = where;
    const untrusted = {
      trusted: `your profile trusts (${profile.ca_pin})`,
      next: `if the server was rebuilt with new CAs, log in again: kport login --proxy ${profile.proxy} --ca-pin <its new pin>`,
    };
    this.client = new ServerClient(parseServerAddress(profile.proxy), {
      ca: profile.ca,
      cert: profile.credential.cert,
      key: profile.credential.key,
      untrusted,
    });
    // One budget for the command's calls, the store's and the others: a server that went away is tried for 2 s in all, then said.
    this.#retry = new RetryBudget(opts.signal);
    this.backend = new RemoteBackend(this.client, {
      stopRetrying: this.#retry.signal,
      outage: this.#retry.outage,
      onDenied: (err) => refusal(err, profile.proxy),
    });
  }

  /**
   * The call with the person's certificate; a refusal is its sentence, with the exit code its
   * status means (core/errors.ts refusalExitCode). Retried while the
   * server cannot be reached: a read whatever the failure, a change only when it never reached the
   * server (sent twice, `users add` would say the user exists).
   */
  async call<R extends Route>(route: R, body: RequestOf<R>): Promise<ResponseOf<R>> {
    const read = (route as Route) !== routes.users || (body as { op?: unknown } | null)?.op === 'ls';
    try {
      return await this.#retry.run(() => this.client.call(route, body), this.client.address, read ? undefined : neverSent);
    } catch (err) {
      // The exit code the refusal's status means, as on the store: only a refusal of who may do it is
      // credentials (4); a user that does not exist is not found (1), a bad name the input (2), said
      // in the server's words as the store says them.
      throw this.#refused(err);
    }
  }

  /** A refusal as the store would say it, with the exit code its status means; anything else as it is. */
  #refused(err: unknown): unknown {
    if (!(err instanceof ApiError)) return err;
    const code = refusalExitCode(err.status);
    if (code === ExitCode.credentials) return refusal(new AccessDeniedError(err.code, err.message), this.where.profile.proxy);
    return new UserError(`${err.message.replace(/\.$/, '')}.`, code);
  }

  /** A call whose answer streams (kport play): its lines as they are read; a refusal is the same sentence as call()'s. */
  async *lines<R extends Route>(route: R, body: RequestOf<R>, signal: AbortSignal, opts: { maxLine?: number } = {}): AsyncGenerator<string> {
    try {
      // Until its first line the stream is retried as any read is (the 2 s budget); after, a break is the end.
      const start = async () => {
        const stream = this.client.lines(route, body, signal, { ...opts, finite: true })[Symbol.asyncIterator]();
        return { stream, first: await stream.next() };
      };
      // A busy answer (429: too many plays in flight) is said at once: it would not clear while the person waits.
      const { stream, first } = await this.#retry.run(start, this.client.address, (err) => !(err instanceof ApiError));
      if (first.done) return;
      yield first.value;
      for (let next = await stream.next(); !next.done; next = await stream.next()) yield next.value;
    } catch (err) {
      throw this.#refused(err);
    }
  }

  whoami(): Promise<Whoami> {
    this.#whoami ??= this.call(routes.whoami, {});
    return this.#whoami;
  }

  /**
   * The clusters this person may reach that an agent serves now, at the server; undefined from a
   * server older than the call (kube ls then shows no Served column).
   */
  async servedClusters(): Promise<Set<string> | undefined> {
    try {
      return new Set((await this.client.call(routes.kubeServed, {})).clusters);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'not_found') return undefined;
      if (err instanceof ApiError) throw refusal(new AccessDeniedError(err.code, err.message), this.where.profile.proxy);
      throw err;
    }
  }

  close(): void {
    this.client.close();
  }
}

/** The server's sentence; an expired certificate (the clock moved on mid-run) says what to run. By code, never by the text. */
function refusal(err: AccessDeniedError, proxy: string): AccessDeniedError {
  if (err.code === ('cert_expired' satisfies ApiErrorCode)) err.message = `${EXPIRED} --proxy ${proxy}.`;
  else err.message = `The kport server at ${proxy} refused: ${err.message.replace(/\.$/, '')}.`;
  return err;
}

/** The person's Kubernetes access from their role definitions (whoami), as AccessChecker describes it. */
export async function personKubeAccess(person: PersonClient) {
  const [{ RoleSet }, who] = await Promise.all([import('../roles/evaluate.ts'), person.whoami()]);
  const roleSet = new RoleSet(who.kube_roles, who.user);
  return {
    user: who.user,
    defined: true,
    roles: who.roles,
    undefinedRoles: who.roles.filter((r) => !who.kube_roles.some((k) => k.metadata.name === r)),
    forCluster: (cluster: { metadata: { labels?: Record<string, string> } }): KubeAccess | undefined => roleSet.kubeAccess(cluster.metadata.labels ?? {}),
  };
}
