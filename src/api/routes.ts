// kport's HTTP API, each route declared once (issue 28): the server's router (server/api/router.ts)
// dispatches, checks and audits by this table, and the clients (client/server-client.ts) take their
// paths and answer schemas from it. A new route is one entry here and its handler in server.ts
// (which does not compile without it).
import type { z } from 'zod';
import * as wire from './wire.ts';
import type { AgentRole } from './wire.ts';

/** The audit event types the API writes (server/events/audit.ts stores them). */
export type AuditType = 'agent.join' | 'agent.renew' | 'agent.call' | 'user.login' | 'user.invite' | 'user.call';

/** Who may call a route: anyone (no certificate asked), or agents and/or people with a certificate. */
export type Callers =
  | 'anyone'
  | {
      /** Agents whose host certificate names one of these roles. */
      agent?: readonly AgentRole[];
      /** People with a user certificate; with a rule, only those whose current roles allow it. */
      person?: true | { resource: 'audit' | 'session' | 'user' | 'lock'; verb: 'list' | 'read' | 'create' | 'update' | 'delete' };
    };

/** How much of a body the server reads, and whose budget of bytes in flight it counts against (server/call/limits.ts LIMITS). */
export interface BodyRule {
  limit: 'joinBodyBytes' | 'loginBodyBytes' | 'agentBodyBytes';
  /** `caller`: the agents' or the people's budget, by who calls. */
  budget: 'unauthenticated' | 'caller';
  /** The whole body must have come within this long (a stranger's). */
  deadline?: 'joinBodyMs';
}

export interface Route<Req extends z.ZodType = z.ZodType, Res extends z.ZodType = z.ZodType> {
  method: 'GET' | 'POST';
  path: string;
  callers: Callers;
  /** Counted per source address before the body is read: a refused guess costs as much as a good one. */
  rate: 'join' | 'login' | 'none';
  /** Absent: the route reads no body (a GET). */
  body?: BodyRule;
  request: Req;
  response: Res;
  /** The answer is lines (a watch's events, a recording's cast) rather than one JSON value. */
  streams?: boolean;
  /** The audit event of an allowed call (written by its handler, which knows what to say) and of a refused one. */
  audit: { allowed?: AuditType; refused: AuditType | { person: AuditType; other: AuditType } };
  /** A request the schema refuses, said as this route always said it (else: the field and what is wrong). */
  invalid?: (body: unknown) => string;
  /** Said to a person who calls a route only agents may. */
  notForPeople?: string;
  /** How a client names the call ("the login") and its answer ("an identity") when the answer is not one; else the path and "its answer". */
  answer?: { call: string; is: string };
}

const CALL: Route['audit']['refused'] = { person: 'user.call', other: 'agent.call' };
const AGENTS = ['discovery', 'kube'] as const satisfies readonly AgentRole[];
const AGENT_BODY: BodyRule = { limit: 'agentBodyBytes', budget: 'caller' };
const LOGIN_BODY: BodyRule = { limit: 'loginBodyBytes', budget: 'unauthenticated' };
const LOGIN_ANSWER = { call: 'the login', is: 'an identity' };

/** A route, its schemas' and its audit events' own types kept (a handler writes `routes.x.audit.allowed`). */
function route<Req extends z.ZodType, Res extends z.ZodType, const A extends Route['audit']>(
  r: Route<Req, Res> & { audit: A },
): Route<Req, Res> & { audit: A } {
  return r;
}

export const routes = {
  ping: route({ method: 'GET', path: '/v1/ping', callers: 'anyone', rate: 'none', request: wire.empty, response: wire.ping, audit: { refused: CALL } }),
  join: route({
    method: 'POST',
    path: '/v1/join',
    callers: 'anyone',
    rate: 'join',
    body: { limit: 'joinBodyBytes', budget: 'unauthenticated', deadline: 'joinBodyMs' },
    request: wire.joinRequest,
    response: wire.hostIdentity,
    answer: { call: '/v1/join', is: 'an agent identity' },
    audit: { allowed: 'agent.join', refused: { person: 'user.call', other: 'agent.join' } },
  }),
  renew: route({
    method: 'POST',
    path: '/v1/renew',
    callers: { agent: AGENTS },
    rate: 'none',
    body: AGENT_BODY,
    request: wire.renewRequest,
    response: wire.hostIdentity,
    answer: { call: '/v1/renew', is: 'an agent identity' },
    audit: { allowed: 'agent.renew', refused: { person: 'user.call', other: 'agent.renew' } },
    notForPeople: 'a user certificate is not renewed: run kport login again',
  }),
  backend: route({
    method: 'POST',
    path: '/v1/backend',
    callers: { agent: AGENTS, person: true },
    rate: 'none',
    body: AGENT_BODY,
    request: wire.backendCall,
    response: wire.backendAnswer,
    audit: { allowed: 'user.call', refused: CALL },
    invalid: (body) => `not a backend call: ${JSON.stringify((body as { op?: unknown } | null)?.op ?? null)}`,
  }),
  watch: route({
    method: 'POST',
    path: '/v1/watch',
    callers: { agent: AGENTS, person: true },
    rate: 'none',
    body: AGENT_BODY,
    request: wire.backendCall,
    response: wire.watchEvent,
    streams: true,
    audit: { refused: CALL },
    invalid: (body) => `not a backend call: ${JSON.stringify((body as { op?: unknown } | null)?.op ?? null)}`,
  }),
  inviteBegin: route({
    method: 'POST',
    path: '/v1/login/invite/begin',
    callers: 'anyone',
    rate: 'login',
    body: LOGIN_BODY,
    request: wire.inviteBeginRequest,
    response: wire.inviteBegun,
    audit: { allowed: 'user.invite', refused: 'user.login' },
    answer: { call: 'the login', is: 'an invite' },
  }),
  inviteFinish: route({
    method: 'POST',
    path: '/v1/login/invite/finish',
    callers: 'anyone',
    rate: 'login',
    body: LOGIN_BODY,
    request: wire.inviteFinishRequest,
    response: wire.identity,
    audit: { allowed: 'user.login', refused: 'user.login' },
    answer: LOGIN_ANSWER,
  }),
  localLogin: route({
    method: 'POST',
    path: '/v1/login/local',
    callers: 'anyone',
    rate: 'login',
    body: LOGIN_BODY,
    request: wire.localLoginRequest,
    response: wire.identity,
    audit: { allowed: 'user.login', refused: 'user.login' },
    answer: LOGIN_ANSWER,
  }),
  oidcBegin: route({
    method: 'POST',
    path: '/v1/login/oidc/begin',
    callers: 'anyone',
    rate: 'login',
    body: LOGIN_BODY,
    request: wire.oidcBeginRequest,
    response: wire.oidcBegun,
    audit: { refused: 'user.login' },
    answer: { call: 'the OIDC login', is: 'a login URL' },
  }),
  oidcFinish: route({
    method: 'POST',
    path: '/v1/login/oidc/finish',
    callers: 'anyone',
    rate: 'login',
    body: LOGIN_BODY,
    request: wire.oidcFinishRequest,
    response: wire.identity,
    audit: { allowed: 'user.login', refused: 'user.login' },
    answer: LOGIN_ANSWER,
  }),
  /** The identity provider's redirect of the browser: answered with a redirect, not JSON. */
  oidcCallback: route({
    method: 'GET',
    path: '/v1/login/oidc/callback',
    callers: 'anyone',
    rate: 'login',
    request: wire.empty,
    response: wire.empty,
    audit: { allowed: 'user.login', refused: 'user.login' },
  }),
  whoami: route({
    method: 'POST',
    path: '/v1/whoami',
    callers: { person: true },
    rate: 'none',
    body: AGENT_BODY,
    request: wire.empty,
    response: wire.whoami,
    audit: { refused: CALL },
  }),
  users: route({
    method: 'POST',
    path: '/v1/users',
    callers: { person: true },
    rate: 'none',
    body: AGENT_BODY,
    request: wire.usersRequest,
    response: wire.usersAnswer,
    audit: { refused: CALL },
  }),
  audit: route({
    method: 'POST',
    path: '/v1/audit',
    callers: { person: { resource: 'audit', verb: 'list' } },
    rate: 'none',
    body: AGENT_BODY,
    request: wire.auditRequest,
    response: wire.auditAnswer,
    audit: { refused: CALL },
  }),
  /** `{op: "ls"}` answers the list; `{session_id}` streams that session's cast (client: lines). */
  recordings: route({
    method: 'POST',
    path: '/v1/recordings',
    callers: { person: true },
    rate: 'none',
    body: AGENT_BODY,
    request: wire.recordingsRequest,
    response: wire.recordingsAnswer,
    audit: { refused: CALL },
  }),
  kubeServed: route({
    method: 'POST',
    path: '/v1/kube/served',
    callers: { person: true },
    rate: 'none',
    body: AGENT_BODY,
    request: wire.empty,
    response: wire.kubeServed,
    audit: { refused: CALL },
  }),
} as const;

export type Routes = typeof routes;
export type RouteName = keyof Routes;
/** What a client sends to a route, and what it gets back (already checked against the schema). */
export type RequestOf<R extends Route> = z.input<R['request']>;
export type ResponseOf<R extends Route> = z.output<R['response']>;
/** What a handler receives: the request as the schema parsed it. */
export type ParsedRequestOf<R extends Route> = z.output<R['request']>;

/** The route at `method` and `path`, if there is one. */
export function findRoute(method: string, path: string): { name: RouteName; route: Route } | undefined {
  for (const [name, route] of Object.entries(routes) as [RouteName, Route][]) if (route.path === path && route.method === method) return { name, route };
  return undefined;
}

/** Whether `path` is any route's, whatever its method. */
export function knownPath(path: string): boolean {
  return Object.values(routes).some((r) => r.path === path);
}
