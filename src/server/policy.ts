import type { Fence, Item } from '../backend/backend.ts';
import { leaderKey } from '../resources/discovery-service.ts';
import { agentRefusal } from './gate.ts';
import { Refusal } from './join.ts';
import { LIMITS } from './limits.ts';

/** Who is calling, from a verified host certificate. */
export interface HostCaller {
  hostId: string;
  roles: string[];
  group: string;
}

/** One Backend method as it travels over `/v1/backend`. */
export type BackendCall =
  | { op: 'get'; key: string }
  | { op: 'list'; prefix: string }
  | { op: 'watch'; prefix: string }
  | { op: 'put' | 'create'; key: string; value: string; ttl_ms?: number; lease?: string; fence?: Fence }
  | { op: 'cas'; key: string; value: string; revision: number; ttl_ms?: number; lease?: string; fence?: Fence }
  | { op: 'delete'; key: string; revision?: number; fence?: Fence }
  | { op: 'grant'; ttl_ms: number }
  | { op: 'keepalive' | 'revoke'; lease: string };

const MAX_LEASE_TTL_MS = 5 * 60_000;
/** The longest key (or prefix, lease id, fence key) a call may name: kport's own keys stay under 300 bytes. */
export const MAX_KEY_BYTES = 1024;

/**
 * Why a call is malformed before any policy applies: a key longer than MAX_KEY_BYTES is refused
 * first, so it is never looked up, compared or copied into a refusal's reason.
 */
export function callProblem(call: BackendCall): string | undefined {
  const names: Array<[string, unknown]> = [
    ['key', 'key' in call ? call.key : undefined],
    ['prefix', 'prefix' in call ? call.prefix : undefined],
    ['lease', 'lease' in call ? call.lease : undefined],
    ['fence key', 'fence' in call ? call.fence?.key : undefined],
    ['fence value', 'fence' in call ? call.fence?.value : undefined],
  ];
  for (const [what, value] of names) {
    if (typeof value === 'string' && Buffer.byteLength(value) > MAX_KEY_BYTES) return `a ${what} is at most ${MAX_KEY_BYTES} bytes (this one has ${Buffer.byteLength(value)})`;
  }
  return undefined;
}

const has = (caller: HostCaller, role: string) => caller.roles.includes(role);

/**
 * Why the server refuses this call from this agent, or undefined when it may run (docs/architecture.md §9).
 * Here, the raw surface of leadership: a discovery agent holds leases, reads its group's leader
 * key, and claims or gives up its own leadership there. Every other call is on resources and
 * decided by kind and verb at the gate (gate.ts, with the kinds' hooks in kind-hooks.ts): a
 * discovery agent reads kube_cluster and writes its group's cloud clusters as leader and its own
 * heartbeat; a Kubernetes agent reads kube_cluster and writes its own kube_server heartbeat and
 * kubeconfig_file clusters. `current` is what the key holds now, for writes that replace or
 * delete; `registered`, how many kubeconfig_file clusters the agent has (needsRegisteredCount).
 */
export function refusal(caller: HostCaller, call: BackendCall, current?: Item, registered = 0): string | undefined {
  const discovery = has(caller, 'discovery');
  const leader = leaderKey(caller.group);
  switch (call.op) {
    case 'grant':
      if (!discovery) return 'only discovery agents hold leases';
      if (!(call.ttl_ms >= 1000 && call.ttl_ms <= MAX_LEASE_TTL_MS)) return `a lease lives 1 s to ${MAX_LEASE_TTL_MS / 60_000} min`;
      return undefined;
    case 'keepalive':
    case 'revoke':
      return discovery ? undefined : 'only discovery agents hold leases';
    case 'get':
      if (discovery && call.key === leader) return undefined;
      break;
    case 'list':
    case 'watch':
      break;
    default:
      if (call.key !== leader) break;
      if (!discovery) return `may not write ${call.key}`;
      if (call.op === 'create' && call.lease && call.value === `${caller.hostId}/${call.lease}` && !call.fence && call.ttl_ms === undefined) return undefined;
      if (call.op === 'delete' && call.revision !== undefined && current?.value.startsWith(`${caller.hostId}/`)) return undefined;
      return `may only claim or give up its own leadership of ${call.key}`;
  }
  return agentRefusal(caller, call, current, registered);
}

/** A /v1/backend or /v1/watch body as a BackendCall; a Refusal when it is not one. */
export function parseCall(body: unknown): BackendCall {
  const call = body as Record<string, unknown> | undefined;
  const str = (k: string) => typeof call?.[k] === 'string' && (call[k] as string).length <= LIMITS.agentBodyBytes;
  const num = (k: string) => call?.[k] === undefined || (typeof call[k] === 'number' && Number.isFinite(call[k]));
  const fenceOk = call?.fence === undefined || (typeof call.fence === 'object' && call.fence !== null && typeof (call.fence as Record<string, unknown>).key === 'string' && typeof (call.fence as Record<string, unknown>).value === 'string');
  const ok = (() => {
    switch (call?.op) {
      case 'get':
        return str('key');
      case 'list':
      case 'watch':
        return str('prefix');
      case 'put':
      case 'create':
        return str('key') && str('value') && num('ttl_ms') && (call.lease === undefined || str('lease')) && fenceOk;
      case 'cas':
        return str('key') && str('value') && typeof call.revision === 'number' && num('ttl_ms') && (call.lease === undefined || str('lease')) && fenceOk;
      case 'delete':
        return str('key') && num('revision') && fenceOk;
      case 'grant':
        return typeof call.ttl_ms === 'number';
      case 'keepalive':
      case 'revoke':
        return str('lease');
      default:
        return false;
    }
  })();
  if (!ok) throw new Refusal(400, 'bad_request', `not a backend call: ${JSON.stringify(call?.op ?? null)}`);
  return call as unknown as BackendCall;
}

/** What an audit event says was asked: the backend operation and its key, or the route. */
export function describeCall(path: string, body: unknown): string {
  const call = body as { op?: unknown; key?: unknown; prefix?: unknown } | null;
  return call && typeof call.op === 'string' ? `${call.op} ${String(call.key ?? call.prefix ?? '')}`.trim() : path;
}
