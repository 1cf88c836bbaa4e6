import type { IncomingHttpHeaders } from 'node:http';
import type { KubeAccess } from '../roles/evaluate.ts';

/**
 * Whether a request header asks for impersonation: `Impersonate-*`, or a name a front proxy that
 * reads '_' as '-' (as nginx and others may) would pass on as one, such as `Impersonate_Group`.
 * The latter are never real impersonation headers, so they are refused with the other unknown ones.
 */
export function isImpersonation(name: string): boolean {
  return name.toLowerCase().replace(/_/g, '-').startsWith('impersonate-');
}

export type ImpersonationResult = { ok: true; user: string; groups: string[] } | { ok: false; message: string };

/**
 * Checks the Impersonate-* headers a client sent against what the roles allow (as Teleport's
 * forwarder does): an allowed user and a subset of the allowed groups pass; anything else is
 * refused. Without them, the defaults apply: the only allowed user (or `defaults.user`) and
 * every allowed group (or `defaults.groups`).
 */
export function resolveImpersonation(
  access: KubeAccess,
  headers: { user: string[]; groups: string[]; other: string[] },
  defaults: { user?: string; groups?: string[] } = {},
): ImpersonationResult {
  if (headers.other.length > 0) return { ok: false, message: `impersonation header ${headers.other[0]} is not allowed through kport` };
  const requestedUsers = headers.user.filter((u) => u !== '');
  if (requestedUsers.length > 1) return { ok: false, message: 'only one Impersonate-User header is allowed' };
  let user = requestedUsers[0] ?? defaults.user;
  if (user === undefined) {
    if (access.users.length > 1) {
      return { ok: false, message: `several Kubernetes users are allowed (${access.users.join(', ')}): pick one with kubectl --as` };
    }
    user = access.users[0]!;
  }
  if (!access.users.includes(user)) return { ok: false, message: `impersonating user "${user}" is not allowed by your kport roles` };
  const groups = headers.groups.length > 0 ? headers.groups : (defaults.groups ?? access.groups);
  const denied = groups.find((g) => !access.groups.includes(g));
  if (denied) return { ok: false, message: `impersonating group "${denied}" is not allowed by your kport roles` };
  return { ok: true, user, groups: [...new Set(groups)] };
}

/**
 * The Impersonate-* headers of a request, resolved against what the roles allow: the one check the
 * local proxy's forwarder and the server's routing both make, so both answer a request alike.
 */
export function impersonationFromHeaders(
  access: KubeAccess,
  headers: IncomingHttpHeaders,
  defaults: { user?: string; groups?: string[] } = {},
): ImpersonationResult {
  const user: string[] = [];
  const groups: string[] = [];
  const other: string[] = [];
  for (const name in headers) {
    if (!isImpersonation(name)) continue;
    const value = headers[name];
    const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
    if (name === 'impersonate-user') user.push(...values);
    else if (name === 'impersonate-group') groups.push(...values.flatMap((v) => v.split(',').map((g) => g.trim())));
    else other.push(name);
  }
  return resolveImpersonation(access, { user, groups, other }, defaults);
}
