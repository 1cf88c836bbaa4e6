// The auditor's person calls: /v1/audit (the trail, filtered here) and /v1/recordings (one session's cast).
import type { Backend } from '../backend/backend.ts';
import { queryAudit, parseAuditQuery, type AuditAnswer } from './audit-query.ts';
import { Refusal } from './join.ts';
import type { Person } from './people-routes.ts';
import { MAX_SESSION_BYTES } from './recording/recorder.ts';
import { NoRecording, readRecording } from './recording/store.ts';

function need(person: Person, resource: 'audit' | 'session', verb: 'list' | 'read'): void {
  if (person.roles.allows(resource, verb)) return;
  throw new Refusal(403, 'forbidden', `user ${person.caller.person} (${person.user.spec.roles.join(', ') || 'no roles'}) may not ${verb} ${resource} resources (no role allows it)`);
}

/** `{since?, user?, cluster?}`: the matching events, for a person whose roles list audit (Teleport's `event`). */
export async function auditCall(backend: Backend, person: Person, body: unknown, now: number): Promise<AuditAnswer> {
  need(person, 'audit', 'list');
  return queryAudit(backend, parseAuditQuery(body), now);
}

/** `{session_id}`: the session's asciicast, for a person whose roles read `session` (Teleport's rule for recordings). */
export async function recordingCall(dir: string | undefined, person: Person, body: unknown): Promise<{ session_id: string; cast: string }> {
  need(person, 'session', 'read');
  if (!dir) throw new Refusal(404, 'no_recording', 'this server keeps no session recordings');
  const id = (body as { session_id?: unknown } | null)?.session_id;
  if (typeof id !== 'string') throw new Refusal(400, 'bad_request', 'this call needs session_id (a string)');
  try {
    // A marker past the cap makes a recording a little longer than the cap.
    return { session_id: id, cast: await readRecording(dir, id, MAX_SESSION_BYTES + 64 * 1024) };
  } catch (err) {
    if (err instanceof NoRecording) throw new Refusal(404, 'no_recording', `${err.message} at this server: find sessions with kport get audit (session.start events)`);
    throw err;
  }
}
