import type { Backend, Item } from '../../backend/backend.ts';
import { AGENT } from '../../resources/agent.ts';
import { DISCOVERY_SERVICE, withLiveState, type DiscoveryService } from '../../resources/discovery-service.ts';
import { kindOfKey } from '../../resources/kinds.ts';
import { decodeResource, encodeResource } from '../../resources/store.ts';
import { TOKEN } from '../../resources/token.ts';
import { parseObject } from '../../resources/views.ts';
import { removeAgent } from './agent-removal.ts';
import type { ServerAudit } from '../events/audit.ts';
import { ApiError } from '../../api/errors.ts';
import type { Person } from './people-routes.ts';
import type { BackendCall } from './backend-call.ts';
import { applyStoreCall, isKeyCall } from './store-call.ts';
import { storeToken } from './token-record.ts';

/** The kind a key or prefix names (src/resources/kinds.ts), for what a kind's calls do beyond the store's. */
const kindOf = (key: string) => kindOfKey(key)?.kind.kind;

/**
 * One /v1/backend call of a person, decided by their current roles at the gate (src/server/auth/gate.ts)
 * and answered with only what they may see. Deleting an agent removes what it said about itself
 * too (its heartbeats and leadership), as `kport agents rm` does on the store.
 */
export async function personBackendCall(
  backend: Backend,
  audit: ServerAudit,
  person: Person,
  call: BackendCall,
  address: string,
  now = Date.now(),
): Promise<unknown> {
  const { policy } = person;
  const writes = call.op === 'put' || call.op === 'cas' || call.op === 'delete' || call.op === 'create';
  const current = writes ? await backend.get(call.key) : undefined;
  const why = policy.refusal(call, current);
  if (why) throw new ApiError('forbidden', `user ${person.caller.person} (${person.user.spec.roles.join(', ') || 'no roles'}) ${why}`);
  const shown = (item: Item | undefined) => ({ item: (item && policy.view(item)) ?? null });
  const opts = 'ttl_ms' in call && call.ttl_ms !== undefined ? { ttlMs: call.ttl_ms } : {};
  // A token is create-only (the policy refuses the rest) and checked as kport tokens add makes it.
  if ((call.op === 'create' || call.op === 'put') && kindOf(call.key) === TOKEN) {
    // The gate let it through as a token of that name, so it is a JSON object.
    const stored = await storeToken(backend, parseObject(call.value) ?? {}, call.ttl_ms, new Date(), () => backend.create(call.key, call.value, opts));
    if ('refused' in stored)
      throw new ApiError('forbidden', `user ${person.caller.person} (${person.user.spec.roles.join(', ') || 'no roles'}) ${stored.refused}`);
    return shown(stored.item);
  }
  if (!isKeyCall(call)) throw new ApiError('bad_request', `${call.op} is not a call people make`);
  const remove = async (key: string, revision: number) =>
    kindOf(key) === AGENT
      ? removeAgent(backend, kindOfKey(key)!.name, audit, { user: person.caller.person, remote_addr: address, reason: `removed by ${person.caller.person}` })
      : backend.delete(key, revision);
  const answer = await applyStoreCall(backend, call, current, opts, (item) => policy.view(item), remove);
  return kindOf(call.op === 'get' ? call.key : call.op === 'list' ? call.prefix : '') === DISCOVERY_SERVICE
    ? heartbeatsAsOfNow(backend, answer as { item?: Item | null; items?: Item[] }, now)
    : answer;
}

/**
 * discovery_service heartbeats as `kport get discovery_service` shows them on the server host:
 * leader only for the agent whose claim holds its group's leader key now. The leader keys hold the
 * leader's fence, which is the server's to read, so the server decides the state for the person.
 */
async function heartbeatsAsOfNow(backend: Backend, answer: { item?: Item | null; items?: Item[] }, now: number): Promise<unknown> {
  const items = answer.items ?? (answer.item ? [answer.item] : []);
  let shown: Item[];
  try {
    const live = await withLiveState(
      backend,
      items.map((i) => decodeResource<DiscoveryService>(i)),
      now,
    );
    shown = items.map((item, i) => ({ ...item, value: encodeResource(live[i]!) }));
  } catch {
    // Agents' heartbeats are checked when written; one that is not one anyway is shown as stored.
    return answer;
  }
  return answer.items ? { items: shown } : { item: shown[0] ?? null };
}
