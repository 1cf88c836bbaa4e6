import type { Item } from '../../backend/backend.ts';
import { leaderKey } from '../../resources/discovery-service.ts';
import type { BackendCall } from './backend-call.ts';
import type { HostCaller } from '../call/caller.ts';
import { agentRefusal } from './gate.ts';

const MAX_LEASE_TTL_MS = 5 * 60_000;

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
