// The server's dispatch, derived from the route table (src/api/routes.ts): for each call, its route,
// its method, its rate bucket, who calls (and whether they may), its body (limit and budget), the
// request parsed by the route's schema, the handler, and the refusal's audit event. Handlers are
// bound by route name (`Handlers`), so a route without one does not compile.
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { ApiError } from '../../api/errors.ts';
import { findRoute, type ParsedRequestOf, type Route, type RouteName, type Routes } from '../../api/routes.ts';
import { ownMessage } from '../../api/wire.ts';
import type { ServerAudit } from '../events/audit.ts';
import type { Caller, Connection, PersonCaller, VerifiedCaller } from '../call/caller.ts';
import { readJson, send } from '../call/http-body.ts';
import { LIMITS, type BodyBudget, type RateLimiter, type ServerTimeouts, sourceKey } from '../call/limits.ts';
import type { Person } from '../auth/people-routes.ts';
import { describeCall } from '../auth/backend-call.ts';
import { remoteOf } from '../call/remote-address.ts';

/** Who made a call, as its route let them in. */
export type Who = { kind: 'anyone' } | { kind: 'agent'; agent: VerifiedCaller } | { kind: 'person'; person: Person };

/** One call as its handler sees it: the request parsed, who made it, and the raw exchange for the routes that stream. */
export interface Call<R extends Route> {
  body: ParsedRequestOf<R>;
  who: Who;
  address: string;
  req: Http2ServerRequest;
  res: Http2ServerResponse;
  socket: TLSSocket;
}

/** A handler answers with the JSON to send, or with nothing once it has answered itself (a stream, a redirect). */
export type Handlers = { [N in RouteName]: (call: Call<Routes[N]>) => Promise<unknown> };

export interface RouterDeps {
  handlers: Handlers;
  audit: ServerAudit;
  timeouts: Pick<ServerTimeouts, 'joinBodyMs'>;
  rates: { join: RateLimiter; login: RateLimiter };
  /** Bodies being read, a budget for strangers', agents' and people's, so a flood of one never starves another. */
  bodies: { unauthenticated: BodyBudget; agent: BodyBudget; person: BodyBudget };
  /** An agent's every call: its certificate unexpired, its record still there (agent-calls.ts). */
  agent(verified: VerifiedCaller, address: string): Promise<VerifiedCaller>;
  /** A person's every call: certificate, record, lock, current roles (people-routes.ts). */
  person(caller: PersonCaller): Promise<Person>;
  /** Each call once answered, by route name ("unknown" for none) and status code (the diagnostics' metrics). */
  observe?(route: string, code: number): void;
}

const RATE_SAYS = { join: 'join attempts', login: 'login calls' } as const;

export class Router {
  readonly #deps: RouterDeps;

  constructor(deps: RouterDeps) {
    this.#deps = deps;
  }

  /** One API call (not a Kubernetes request: kube-routes.ts takes those first). */
  async handle(req: Http2ServerRequest, res: Http2ServerResponse, connection: Connection | undefined): Promise<void> {
    const socket = (req.stream?.session?.socket ?? req.socket) as TLSSocket;
    const address = remoteOf(socket);
    const path = (req.url ?? '').split('?')[0] ?? '';
    const method = req.method ?? '';
    const found = findRoute(method, path);
    const observe = this.#deps.observe;
    if (observe) res.once('close', () => observe(found?.name ?? 'unknown', res.statusCode));
    // What the refusal's audit event says: the caller once known, and the call once its body is read.
    const seen: { caller?: Caller; action: string } = { action: path };
    try {
      if (!found && method !== 'POST') throw new ApiError('method_not_allowed', `${method} ${path} is not a kport API call`);
      if (found?.route.callers === 'anyone') return await this.#answer(found.name, found.route, { kind: 'anyone' }, req, res, socket, address, seen);
      // Who is calling before anything else is read from them.
      const verified =
        connection?.caller ??
        new ApiError(
          'unauthenticated',
          "this call needs the agent host certificate it received when it joined, or a person's user certificate from kport login",
        );
      if (verified instanceof ApiError) throw verified;
      seen.caller = verified;
      const who: Who =
        'person' in verified
          ? { kind: 'person', person: await this.#deps.person(verified) }
          : { kind: 'agent', agent: await this.#deps.agent(verified, address) };
      return await this.#answer(found?.name, found?.route, who, req, res, socket, address, seen);
    } catch (err) {
      await this.#refused(err, found?.route, req, res, connection, address, path, seen);
    }
  }

  async #answer(
    name: RouteName | undefined,
    route: Route | undefined,
    who: Who,
    req: Http2ServerRequest,
    res: Http2ServerResponse,
    socket: TLSSocket,
    address: string,
    seen: { action: string },
  ): Promise<void> {
    if (route && route.rate !== 'none') {
      // Counted before the body is read: a refused guess costs as much as a good one.
      const turn = this.#deps.rates[route.rate].take(sourceKey(socket.remoteAddress));
      if (!turn.ok)
        throw new ApiError(
          'rate_limited',
          `too many ${RATE_SAYS[route.rate]} from ${socket.remoteAddress ?? 'this address'}: try again in ${Math.ceil(turn.retryAfterMs / 1000)} s`,
        );
    }
    const raw = await this.#body(route, who, req);
    if (who.kind !== 'anyone') seen.action = describeCall(seen.action, raw);
    if (!route || !name) throw new ApiError('not_found', `no such API call: ${(req.url ?? '').split('?')[0] ?? ''}`);
    this.#admit(route, who);
    const parsed = route.body ? route.request.safeParse(raw) : { success: true as const, data: raw };
    if (!parsed.success) throw new ApiError('bad_request', route.invalid?.(raw) ?? said(parsed.error.issues[0]));
    const handler = this.#deps.handlers[name] as (call: Call<Route>) => Promise<unknown>;
    const answer = await handler({ body: parsed.data, who, address, req, res, socket });
    if (answer !== undefined) send(res, 200, answer);
  }

  /** The body as JSON, within the route's limit and against its budget; a GET has none. */
  async #body(route: Route | undefined, who: Who, req: Http2ServerRequest): Promise<unknown> {
    const rule = route?.body ?? (who.kind === 'anyone' ? undefined : { limit: 'agentBodyBytes' as const, budget: 'caller' as const });
    if (!rule) return undefined;
    const budget = rule.budget === 'unauthenticated' || who.kind === 'anyone' ? this.#deps.bodies.unauthenticated : this.#deps.bodies[who.kind];
    return readJson(req, LIMITS[rule.limit], budget, rule.deadline ? { deadlineMs: this.#deps.timeouts[rule.deadline] } : {});
  }

  /** Whether this caller may call this route at all (what it may do there is the handler's to decide). */
  #admit(route: Route, who: Who): void {
    const callers = route.callers;
    if (callers === 'anyone' || who.kind === 'anyone') return;
    if (who.kind === 'agent') {
      if (!callers.agent)
        throw new ApiError('forbidden', `${route.path} is a person's call: it needs a user certificate from kport login, not an agent's host certificate`);
      const roles: readonly string[] = callers.agent;
      if (!who.agent.roles.some((r) => roles.includes(r)))
        throw new ApiError(
          'forbidden',
          `agent ${who.agent.hostId} (${who.agent.roles.join(', ')}) may not call ${route.path}: it is for ${roles.join(' or ')} agents`,
        );
      return;
    }
    if (!callers.person) throw new ApiError('forbidden', route.notForPeople ?? `${route.path} is an agent's call: a user certificate cannot make it`);
    if (callers.person === true) return;
    const { resource, verb } = callers.person;
    const { person } = who;
    if (!person.roles.allows(resource, verb))
      throw new ApiError(
        'forbidden',
        `user ${person.caller.person} (${person.user.spec.roles.join(', ') || 'no roles'}) may not ${verb} ${resource} resources (no role allows it)`,
      );
  }

  async #refused(
    err: unknown,
    route: Route | undefined,
    req: Http2ServerRequest,
    res: Http2ServerResponse,
    connection: Connection | undefined,
    address: string,
    path: string,
    seen: { caller?: Caller; action: string },
  ): Promise<void> {
    const refused = err instanceof ApiError ? err : new ApiError('internal', 'the server failed to answer this call; its log says why');
    // The cause (a store path, an SQLite error) is for the server's log, not for whoever called,
    // within the caller's budget of log bytes.
    if (refused.status === 500) this.#deps.audit.failure(address, `${path} failed: ${(err as Error).message}`);
    if (refused.status !== 500 && refused.status !== 404 && refused.status !== 405) {
      // A removed agent is refused after its certificate was verified: the event names that host.
      const verified = seen.caller ?? connection?.caller;
      const person = verified && 'person' in verified ? verified.person : refused.user;
      const type = auditType(route, person !== undefined);
      await this.#deps.audit.record({
        type,
        outcome: 'refused',
        ...(verified && 'hostId' in verified && { host_id: verified.hostId, roles: verified.roles }),
        ...(person && { user: person }),
        ...(refused.tokenName && { token_name: refused.tokenName }),
        action: seen.action,
        reason: refused.reason ?? refused.message,
        remote_addr: address,
      });
    }
    if (!res.headersSent) send(res, refused.status, { error: { code: refused.code, message: refused.message } }, req);
    else res.end();
    // A stranger too slow to send a join goes with its connection; so does an expired certificate.
    if (refused.code === 'cert_expired' || refused.code === 'too_slow') connection?.drop();
  }
}

/** The audit event type of a refusal: the route's, by whether a person made the call; an unknown route's is a call's. */
function auditType(route: Route | undefined, byPerson: boolean): string {
  const refused = route?.audit.refused ?? { person: 'user.call', other: 'agent.call' };
  if (typeof refused === 'string') return refused;
  return byPerson ? refused.person : refused.other;
}

/** A schema's first issue: in its own words when it has them, else the field and what is wrong with it. */
function said(issue: { path: PropertyKey[]; message: string; params?: Record<string, unknown> } | undefined): string {
  if (!issue) return 'the request is malformed';
  if (ownMessage(issue) || issue.path.length === 0) return issue.message;
  return `${issue.path.map(String).join('.')}: ${issue.message}`;
}

/** The agent the router let in (the route admits only agents, or this branch is theirs). */
export function agentOf(who: Who): VerifiedCaller {
  if (who.kind !== 'agent') throw new Error(`an agent's route reached with a ${who.kind} caller`);
  return who.agent;
}

/** The person the router let in (the route admits only people, or this branch is theirs). */
export function personOf(who: Who): Person {
  if (who.kind !== 'person') throw new Error(`a person's route reached with a ${who.kind} caller`);
  return who.person;
}
