// `kport get audit --since 1h --user U --cluster C`: the same filter at the server (for people, so
// only what they asked for crosses the network) and on a local store.
import type { Backend } from '../../backend/backend.ts';
import { ApiError } from '../../api/errors.ts';
import { foldName } from '../../people/names.ts';
import { AUDIT_EVENT, type AuditEvent } from '../../resources/audit-event.ts';
import { kindPrefix } from '../../resources/resource.ts';
import { decodeResource } from '../../resources/store.ts';

/** The most events one answer holds; the newest are kept, and the answer says how many were left out. */
export const MAX_AUDIT_ANSWER = 10_000;
const HOUR = 3_600_000;

export interface AuditQuery {
  /** Epoch milliseconds: events at or after it. */
  since?: number;
  user?: string;
  cluster?: string;
}

export interface AuditAnswer {
  events: AuditEvent[];
  /** Events that matched but were left out (the oldest), past MAX_AUDIT_ANSWER. */
  omitted: number;
}

/** The query of a /v1/audit call; a malformed one is a 400 that says which field. */
export function parseAuditQuery(body: unknown): AuditQuery {
  const input = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const query: AuditQuery = {};
  if (input.since !== undefined) {
    if (typeof input.since !== 'string' || Number.isNaN(Date.parse(input.since)))
      throw new ApiError('bad_request', 'since is an RFC 3339 time, such as 2026-01-02T15:04:05Z');
    query.since = Date.parse(input.since);
  }
  for (const key of ['user', 'cluster'] as const) {
    const value = input[key];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value.length === 0 || value.length > 256) throw new ApiError('bad_request', `${key} is a name of at most 256 characters`);
    query[key] = value;
  }
  return query;
}

/**
 * The events matching `query`, oldest first. Event names start with their time, so a `since`
 * reads only the hours (or days) it covers instead of the whole retention period.
 */
export async function queryAudit(backend: Backend, query: AuditQuery, now: number): Promise<AuditAnswer> {
  const prefixes = query.since === undefined ? [kindPrefix(AUDIT_EVENT)] : timePrefixes(query.since, now).map((p) => `${kindPrefix(AUDIT_EVENT)}${p}`);
  const matched: AuditEvent[] = [];
  for (const prefix of prefixes) {
    for (const item of await backend.list(prefix)) {
      const event = decodeResource<AuditEvent>(item);
      if (matches(event, query)) matched.push(event);
    }
  }
  matched.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const omitted = Math.max(0, matched.length - MAX_AUDIT_ANSWER);
  return { events: matched.slice(omitted), omitted };
}

export function matches(event: AuditEvent, query: AuditQuery): boolean {
  const { spec } = event;
  if (query.since !== undefined && !(Date.parse(spec.time) >= query.since)) return false;
  // User names are unique whatever their case (people/names.ts): --user admin also finds the
  // events of Admin, from a store older than that rule or a refused login typed in another case.
  if (query.user !== undefined && (spec.user === undefined || foldName(spec.user) !== foldName(query.user))) return false;
  if (query.cluster !== undefined && spec.cluster !== query.cluster) return false;
  return true;
}

/** ISO-time prefixes covering [since, now]: hours for two days or less, days for longer; '' (everything) past a year. */
export function timePrefixes(since: number, now: number): string[] {
  if (since > now) return [new Date(since).toISOString().slice(0, 13)];
  const span = now - since;
  if (span > 366 * 24 * HOUR) return [''];
  const [step, width] = span <= 48 * HOUR ? [HOUR, 13] : [24 * HOUR, 10];
  const prefixes = new Set<string>();
  for (let t = since - (since % step); t <= now; t += step) prefixes.add(new Date(t).toISOString().slice(0, width));
  prefixes.add(new Date(now).toISOString().slice(0, width));
  return [...prefixes];
}
