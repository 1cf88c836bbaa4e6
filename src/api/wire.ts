// What crosses the wire between kport's server and its clients, as zod schemas: the route table
// (routes.ts) names one per request and answer, the server parses requests with them and the
// clients answers, and both sides use the types inferred here (docs/style.md 23).
import { z } from 'zod';
import type { AuditEvent } from '../resources/audit-event.ts';
import type { RoleV7 } from '../resources/role.ts';

/** The services kport agents run; a token's other Teleport roles are not joinable here. */
export const AGENT_ROLES = ['discovery', 'kube'] as const;
export type AgentRole = (typeof AGENT_ROLES)[number];

/**
 * A field the handler judges itself, and refuses in its own words: kept when it is a string,
 * dropped otherwise. Logins use it so that a malformed field fails as a wrong one does (the same
 * sentence, counted by the throttle, audited), and a guesser learns nothing from the shape.
 */
const said = z.string().optional().catch(undefined);

/** An object of `said` fields; a body that is no object at all reads as an empty one. */
function lenient<S extends z.ZodRawShape>(shape: S) {
  return z.preprocess((v) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {}), z.object(shape));
}

// --- agents: join and renew ---------------------------------------------------------------

const MAX_CSR = 16_384;

/**
 * Sentences a schema says itself (the ones the server always said); any other issue is said with
 * the field it is about (server/api/router.ts).
 */
const OWN = new Set<string>();
function say(message: string): string {
  OWN.add(message);
  return message;
}
/** Whether an issue is said in a schema's own words (a fixed sentence, or a custom issue marked `own`). */
export function ownMessage(issue: { message: string; code?: string; params?: Record<string, unknown> }): boolean {
  return OWN.has(issue.message) || issue.params?.own === true;
}
const OWN_ISSUE = { own: true };

const NEEDS_TOKEN = say('a join needs a token');
const NEEDS_ROLES = say('a join needs the roles it asks for');
const NEEDS_HOSTNAME = say('a join needs the agent hostname');
const NEEDS_CSR = say('a join needs a certificate request');

export const joinRequest = z.object({
  token: z.string({ error: NEEDS_TOKEN }).refine((t) => t.trim() !== '' && t.length <= 1024, NEEDS_TOKEN),
  roles: z
    .array(z.string({ error: NEEDS_ROLES }), { error: NEEDS_ROLES })
    .min(1, NEEDS_ROLES)
    .superRefine((roles, ctx) => {
      const unknown = roles.find((r) => !(AGENT_ROLES as readonly string[]).includes(r.toLowerCase()));
      if (unknown) ctx.addIssue({ code: 'custom', message: `kport agents join as ${AGENT_ROLES.join(' or ')}, not ${unknown}`, params: OWN_ISSUE });
    }),
  hostname: z.string({ error: NEEDS_HOSTNAME }).min(1, NEEDS_HOSTNAME),
  csr: z.string({ error: NEEDS_CSR }).max(MAX_CSR, NEEDS_CSR),
  discovery_group: z
    .custom<string>((v) => typeof v === 'string', { error: (issue) => `discovery group "${String(issue.input)}" is not a valid name`, params: OWN_ISSUE })
    .optional(),
});

/** What /v1/join and /v1/renew answer: the agent's identity, its certificate and the CAs it trusts. */
export const hostIdentity = z.looseObject({
  host_id: z.string().min(1),
  roles: z.array(z.string()),
  discovery_group: z.string(),
  cert: z.string(),
  /** The server TLS CA the agent trusts from now on. */
  ca: z.string(),
  expires: z.string(),
  /** The public half of the key that signs the identities on tunnel streams (a certificate, PEM); absent from servers older than tunnels. */
  kube_identity: z.string().optional(),
});
export type HostIdentity = z.infer<typeof hostIdentity>;

const RENEW_CSR = say('a renewal needs a certificate request');
const ROLES_LIST = say('roles must be a list');
export const renewRequest = z.object({
  csr: z.string({ error: RENEW_CSR }).max(MAX_CSR, RENEW_CSR),
  roles: z.array(z.string({ error: ROLES_LIST }), { error: ROLES_LIST }).optional(),
});

// --- the agents' (and people's) store calls -------------------------------------------------

const fence = z.object({ key: z.string(), value: z.string() });
const ttl = z.number().refine(Number.isFinite).optional();
/** One store operation (policy.ts judges what each caller may do with it). */
export const backendCall = z.discriminatedUnion('op', [
  z.object({ op: z.literal('get'), key: z.string() }),
  z.object({ op: z.literal('list'), prefix: z.string() }),
  z.object({ op: z.literal('watch'), prefix: z.string() }),
  z.object({ op: z.enum(['put', 'create']), key: z.string(), value: z.string(), ttl_ms: ttl, lease: z.string().optional(), fence: fence.optional() }),
  z.object({
    op: z.literal('cas'),
    key: z.string(),
    value: z.string(),
    revision: z.number(),
    ttl_ms: ttl,
    lease: z.string().optional(),
    fence: fence.optional(),
  }),
  z.object({ op: z.literal('delete'), key: z.string(), revision: ttl, fence: fence.optional() }),
  z.object({ op: z.literal('grant'), ttl_ms: z.number() }),
  z.object({ op: z.enum(['keepalive', 'revoke']), lease: z.string() }),
]);
export type BackendCallBody = z.input<typeof backendCall>;

export const item = z.looseObject({ key: z.string(), value: z.string(), revision: z.number(), expires: z.number().optional(), lease: z.string().optional() });

/** What a store call answers: the one field its operation fills. */
export const backendAnswer = z.looseObject({
  item: item.nullable().optional(),
  items: z.array(item).optional(),
  revision: z.number().optional(),
  deleted: z.boolean().optional(),
  lease: z.object({ id: z.string(), ttl_ms: z.number() }).optional(),
  alive: z.boolean().optional(),
});

/** One line of a watch. */
export const watchEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('put'), item }),
  z.object({ type: z.literal('delete'), key: z.string(), revision: z.number() }),
]);

// --- people: logins ---------------------------------------------------------------------------

export const inviteBeginRequest = lenient({ invite: said });
export const inviteBegun = z.looseObject({ user: z.string(), totp_uri: z.string(), totp_secret: z.string() });
export type InviteBegun = z.infer<typeof inviteBegun>;
export const inviteFinishRequest = lenient({ invite: said, password: said, totp_code: said, csr: said });
export const localLoginRequest = lenient({ user: said, password: said, totp_code: said, csr: said });
export const oidcBeginRequest = lenient({ csr: said, redirect_uri: said });
export const oidcBegun = z.looseObject({ auth_url: z.string(), attempt: z.string(), secret: z.string() });
export const oidcFinishRequest = lenient({ attempt: said, secret: said, code: said });

/** What every login answers (docs/people.md). */
export const identity = z.looseObject({ user: z.string(), roles: z.array(z.string()), cert: z.string(), ca: z.string(), expires: z.string() });
export type Identity = z.infer<typeof identity>;

// --- people: their calls ----------------------------------------------------------------------

export const empty = lenient({});

export const whoami = z.looseObject({
  user: z.string(),
  roles: z.array(z.string()),
  expires: z.string(),
  kube_roles: z.array(z.custom<RoleV7>((v) => typeof v === 'object' && v !== null)),
});
export type Whoami = z.infer<typeof whoami>;

export const usersRequest = lenient({
  op: z.unknown().optional(),
  name: said,
  roles: z.unknown().optional(),
  invite_ttl_ms: z.unknown().optional(),
  ttl_ms: z.unknown().optional(),
  message: z.unknown().optional(),
  set_roles: z.unknown().optional(),
  add_roles: z.unknown().optional(),
  remove_roles: z.unknown().optional(),
});

export const userSummary = z.looseObject({
  name: z.string(),
  roles: z.array(z.string()),
  auth: z.string(),
  locked: z.object({ until: z.string().optional(), message: z.string().optional() }).optional(),
  created: z.string(),
});
export type UserSummary = z.infer<typeof userSummary>;

/** What a /v1/users call answers: the fields of its op (ls: users; add, reset: the invite; update: roles; lock: user_exists). */
export const usersAnswer = z.looseObject({
  users: z.array(userSummary).optional(),
  user: z.string().optional(),
  invite: z.string().optional(),
  invite_expires: z.string().optional(),
  roles: z.array(z.string()).optional(),
  user_exists: z.boolean().optional(),
});

export const auditRequest = lenient({ since: z.unknown().optional(), user: z.unknown().optional(), cluster: z.unknown().optional() });
export const auditAnswer = z.looseObject({ events: z.array(z.custom<AuditEvent>((v) => typeof v === 'object' && v !== null)), omitted: z.number() });

export const recordingsRequest = lenient({ op: z.unknown().optional(), session_id: said, limit: z.unknown().optional() });
const nullable = z.string().nullable();
export const recordingInfo = z.object({
  session_id: z.string(),
  user: nullable,
  cluster: nullable,
  kind: z.enum(['exec', 'attach']).nullable(),
  namespace: nullable,
  pod: nullable,
  container: nullable,
  command: nullable,
  start: nullable,
  duration_ms: z.number().nullable(),
  size_bytes: z.number(),
});
export type RecordingInfo = z.infer<typeof recordingInfo>;
export const recordingsAnswer = z.looseObject({ recordings: z.array(recordingInfo) });

export const kubeServed = z.looseObject({ clusters: z.array(z.string()) });

export const ping = z.looseObject({ server: z.literal('kport'), ca_pin: z.string() });

/** A refusal's body, whatever the route. */
export const refusalBody = z.object({ error: z.object({ code: z.string().optional(), message: z.string().optional() }).optional() });
