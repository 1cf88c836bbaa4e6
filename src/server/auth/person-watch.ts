import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { ApiError } from '../../api/errors.ts';
import type { Backend, WatchEvent } from '../../backend/backend.ts';
import { callProblem, type BackendCall } from './backend-call.ts';
import type { PeopleRoutes, Person } from './people-routes.ts';
import { PersonWatchView } from './person-watch-view.ts';
import { newestRevision, streamWatch, type WatchStreamDeps } from './watch-stream.ts';

/**
 * A person's /v1/watch: refused as the policy says; then each batch is shown as the person's roles
 * allow at send time (records at least as new as the events about to go out: feeds report apart,
 * and a lock's may lag a cluster's), and a watch they may no longer open ends.
 */
export async function personWatch(
  deps: { backend: Backend; people: PeopleRoutes; streams: WatchStreamDeps },
  person: Person,
  call: BackendCall,
  req: Http2ServerRequest,
  res: Http2ServerResponse,
): Promise<void> {
  if (call.op !== 'watch') throw new ApiError('bad_request', 'a watch needs a prefix');
  const malformed = callProblem(call);
  if (malformed) throw new ApiError('bad_request', malformed);
  const why = person.policy.refusal(call);
  if (why) throw new ApiError('forbidden', `user ${person.caller.person} ${why}`);
  let current = person;
  // What they could see as it opens: a delete of anything else would name a record they never could.
  const view = new PersonWatchView((await deps.backend.list(call.prefix)).flatMap((item) => (person.policy.view(item) ? [item.key] : [])));
  const alive = (batch: WatchEvent[] = []) =>
    deps.people.person(person.caller, newestRevision(batch)).then(
      (now) => {
        current = now;
        return !now.policy.refusal(call);
      },
      () => false,
    );
  return streamWatch(deps.streams, `user:${person.caller.person}`, call.prefix, (e) => view.show(current.policy, e), alive, req, res);
}
