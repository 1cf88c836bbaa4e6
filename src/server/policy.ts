import type { Fence, Item } from '../backend/backend.ts';
import { leaderKey } from '../discovery/leadership.ts';
import { DISCOVERY_SERVICE } from '../resources/discovery-service.ts';
import { KUBE_CLUSTER, ownedBy } from '../resources/kube-cluster.ts';
import { KUBE_SERVER } from '../resources/kube-server.ts';
import { kindPrefix } from '../resources/resource.ts';
import { kubeClusterSchema } from '../resources/schemas.ts';

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

const KUBE_CLUSTERS = kindPrefix(KUBE_CLUSTER);
const MAX_HEARTBEAT_TTL_MS = 86_400_000;
const MAX_LEASE_TTL_MS = 5 * 60_000;

const has = (caller: HostCaller, role: string) => caller.roles.includes(role);

/**
 * Why the server refuses this call from this agent, or undefined when it may run (DESIGN.md §9).
 * A discovery agent reads kube_cluster and its group's leader key; it writes only kube_cluster of
 * origin cloud in its own group (as the group's leader, with `spec.aws`, never a kubeconfig), its
 * own heartbeat and its own leader claim. A Kubernetes agent reads kube_cluster and writes its own
 * kube_server heartbeat. `current` is what the key holds now, for writes that replace or delete.
 */
export function refusal(caller: HostCaller, call: BackendCall, current?: Item): string | undefined {
  const discovery = has(caller, 'discovery');
  const kube = has(caller, 'kube');
  const leader = leaderKey(caller.group);
  switch (call.op) {
    case 'get':
      if ((discovery || kube) && call.key.startsWith(KUBE_CLUSTERS)) return undefined;
      if (discovery && call.key === leader) return undefined;
      return `may not read ${call.key}`;
    case 'list':
    case 'watch':
      if ((discovery || kube) && call.prefix.startsWith(KUBE_CLUSTERS)) return undefined;
      return `may not read ${call.prefix}`;
    case 'grant':
      if (!discovery) return 'only discovery agents hold leases';
      if (!(call.ttl_ms >= 1000 && call.ttl_ms <= MAX_LEASE_TTL_MS)) return `a lease lives 1 s to ${MAX_LEASE_TTL_MS / 60_000} min`;
      return undefined;
    case 'keepalive':
    case 'revoke':
      return discovery ? undefined : 'only discovery agents hold leases';
  }
  const key = call.key;
  if (key.startsWith(KUBE_CLUSTERS)) {
    if (!discovery) return 'may not write kube_cluster resources: only discovery agents do';
    return clusterWriteRefusal(caller, call, current);
  }
  if (key === leader) {
    if (!discovery) return `may not write ${key}`;
    if (call.op === 'create' && call.lease && call.value === `${caller.hostId}/${call.lease}` && !call.fence && call.ttl_ms === undefined) return undefined;
    if (call.op === 'delete' && call.revision !== undefined && current?.value.startsWith(`${caller.hostId}/`)) return undefined;
    return `may only claim or give up its own leadership of ${key}`;
  }
  if (key === `${kindPrefix(DISCOVERY_SERVICE)}${caller.hostId}`) {
    if (!discovery) return `may not write ${key}`;
    return heartbeatRefusal(caller, call, DISCOVERY_SERVICE, (spec) => spec.host_id === caller.hostId && spec.discovery_group === caller.group);
  }
  if (key === `${kindPrefix(KUBE_SERVER)}${caller.hostId}`) {
    if (!kube) return `may not write ${key}`;
    return heartbeatRefusal(caller, call, KUBE_SERVER, (spec) => spec.host_id === caller.hostId);
  }
  return `may not write ${key}`;
}

function heartbeatRefusal(caller: HostCaller, call: BackendCall, kind: string, specOk: (spec: Record<string, unknown>) => boolean): string | undefined {
  if (call.op !== 'put' || call.lease || call.fence) return `writes its ${kind} heartbeat only with a plain put`;
  if (!(call.ttl_ms !== undefined && call.ttl_ms > 0 && call.ttl_ms <= MAX_HEARTBEAT_TTL_MS)) return `a ${kind} heartbeat needs a TTL of at most a day`;
  const value = parse(call.value);
  if (value?.kind !== kind || value.metadata?.name !== caller.hostId || !specOk(value.spec ?? {})) return `may write only its own ${kind} heartbeat (host ${caller.hostId}, discovery group "${caller.group}")`;
  return undefined;
}

function clusterWriteRefusal(caller: HostCaller, call: Exclude<BackendCall, { op: 'get' | 'list' | 'watch' | 'grant' | 'keepalive' | 'revoke' }>, current: Item | undefined): string | undefined {
  const leader = leaderKey(caller.group);
  if (!call.fence || call.fence.key !== leader || !call.fence.value.startsWith(`${caller.hostId}/`)) return `writes kube_cluster resources only as the leader of discovery group "${caller.group}"`;
  if ('lease' in call && call.lease) return 'kube_cluster resources are not bound to leases';
  if ('ttl_ms' in call && call.ttl_ms !== undefined) return 'kube_cluster resources do not expire';
  if (current && !ownedBy(parse(current.value), caller.group)) return `${call.key} is not a cloud cluster of discovery group "${caller.group}"`;
  if (call.op === 'delete') return undefined;
  const parsed = kubeClusterSchema.safeParse(parse(call.value));
  if (!parsed.success) return `is not a valid kube_cluster: ${parsed.error.issues[0]?.message ?? 'invalid'}`;
  const cluster = parsed.data;
  if (`${KUBE_CLUSTERS}${cluster.metadata.name}` !== call.key) return `names ${cluster.metadata.name} but writes ${call.key}`;
  if (cluster.spec.kubeconfig !== undefined || !cluster.spec.aws) return 'a discovered kube_cluster carries spec.aws and never a kubeconfig';
  if (!ownedBy(cluster, caller.group)) return `may write only cloud clusters of its own discovery group "${caller.group}"`;
  return undefined;
}

function parse(value: string): { kind?: string; metadata?: { name?: string; labels?: Record<string, string> }; spec?: Record<string, unknown> } | undefined {
  try {
    const parsed = JSON.parse(value) as unknown;
    return parsed && typeof parsed === 'object' ? (parsed as never) : undefined;
  } catch {
    return undefined;
  }
}
