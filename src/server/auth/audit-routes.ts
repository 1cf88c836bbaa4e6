// The auditor's person calls: /v1/audit (the trail, filtered here) and /v1/recordings (the list, and one session's cast).
// Paths, callers and the audit route's role rule are in src/api/routes.ts.
import { once } from 'node:events';
import { ApiError } from '../../api/errors.ts';
import type { Http2ServerResponse } from 'node:http2';
import type { Readable } from 'node:stream';
import type { Backend } from '../../backend/backend.ts';
import { queryAudit, parseAuditQuery, type AuditAnswer } from '../events/audit-query.ts';
import type { Person } from './people-routes.ts';
import { SinkError, type RecordingSink } from '../../recordings/sink.ts';
import type { RecordingReaders } from '../events/recording/readers.ts';
import { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, NoRecording } from '../../recordings/store.ts';
import { send } from '../call/http-body.ts';

function need(person: Person, resource: 'audit' | 'session', verb: 'list' | 'read'): void {
  if (person.roles.allows(resource, verb)) return;
  throw new ApiError(
    'forbidden',
    `user ${person.caller.person} (${person.user.spec.roles.join(', ') || 'no roles'}) may not ${verb} ${resource} resources (no role allows it)`,
  );
}

/** `{since?, user?, cluster?}`: the matching events, for a person whose roles list audit (Teleport's `event`: the route's rule, which the router holds them to). */
export async function auditCall(backend: Backend, body: unknown, now: number): Promise<AuditAnswer> {
  return queryAudit(backend, parseAuditQuery(body), now);
}

export interface RecordingsDeps {
  /** Where the recordings are (the server's directory, or the bucket every server shares); undefined when the server keeps none. */
  sink?: Pick<RecordingSink, 'list' | 'open'>;
  readers: RecordingReaders;
}

/**
 * The person calls on recordings, for roles that read `session` (Teleport's rule for recordings):
 * `{op: "ls", limit?}` lists them (list), `{session_id}` streams one session's asciicast (read) as
 * it is on disk, 64 KiB at a time and only as fast as the caller reads: never whole in memory.
 */
export async function recordingsCall(deps: RecordingsDeps, person: Person, body: unknown, res: Http2ServerResponse): Promise<void> {
  const call = (body ?? {}) as { op?: unknown; session_id?: unknown; limit?: unknown };
  if (call.op === 'ls') {
    need(person, 'session', 'list');
    const limit = call.limit ?? DEFAULT_LIST_LIMIT;
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT)
      throw new ApiError('bad_request', `limit is a whole number from 1 to ${MAX_LIST_LIMIT}`);
    const leave = deps.readers.enter(person.caller.person, 'list');
    try {
      return send(res, 200, { recordings: deps.sink ? await deps.sink.list(limit).catch(unavailable) : [] });
    } finally {
      leave();
    }
  }
  if (call.op !== undefined && call.op !== 'play') throw new ApiError('bad_request', 'op is ls or play');
  need(person, 'session', 'read');
  const { sink } = deps;
  if (!sink) throw new ApiError('no_recording', 'this server keeps no session recordings');
  const id = call.session_id;
  if (typeof id !== 'string') throw new ApiError('bad_request', 'this call needs session_id (a string)');
  const leave = deps.readers.enter(person.caller.person, 'play');
  try {
    let opened;
    try {
      opened = await sink.open(id);
    } catch (err) {
      if (err instanceof NoRecording) throw new ApiError('no_recording', `${err.message} at this server: find sessions with kport recordings ls`);
      return unavailable(err);
    }
    res.writeHead(200, { 'content-type': 'application/x-asciicast', 'content-length': opened.size });
    await relay(opened.stream, res);
  } finally {
    leave();
  }
}

/** The recordings' storage (a bucket) did not answer: 503 with what it said, not an internal error. */
function unavailable(err: unknown): never {
  if (err instanceof SinkError) throw new ApiError('busy', `${err.message}: try again later, or ask an operator to check auth_service.audit_sessions_uri`);
  throw err;
}

/** The file's chunks to the response as the caller takes them; a caller gone stops the read and closes the file. */
async function relay(file: Readable, res: Http2ServerResponse): Promise<void> {
  const gone = new Promise<void>((resolve) => res.once('close', resolve));
  try {
    for await (const chunk of file) {
      if (res.destroyed || res.writableEnded) return;
      if (!res.write(chunk)) await Promise.race([once(res, 'drain'), gone]);
    }
    res.end();
  } finally {
    file.destroy();
  }
}
