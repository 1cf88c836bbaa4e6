import type { Backend, Item } from '../../backend/backend.ts';
import { MAX_KUBECONFIG_CLUSTERS } from '../../kube/kubeconfig-clusters.ts';
import { KUBE_CLUSTER, mayServe, registeredBy, registeringAgent, type KubeCluster } from '../../resources/kube-cluster.ts';
import { KUBE_SERVER } from '../../resources/kube-server.ts';
import { kindOfKey } from '../../resources/kinds.ts';
import { kindPrefix } from '../../resources/resource.ts';
import { kubeClusterSchema } from '../../resources/schemas.ts';
import type { BackendCall } from './backend-call.ts';
import type { HostCaller } from '../call/caller.ts';

const KUBE_CLUSTERS = kindPrefix(KUBE_CLUSTER);

type WriteCall = Extract<BackendCall, { op: 'put' | 'create' | 'cas' | 'delete' }>;

/** Whether a kube agent's write is about a kubeconfig_file cluster (its value or what it replaces says so), so this policy judges it. */
export function isKubeconfigClusterWrite(call: WriteCall, current: Item | undefined): boolean {
  return registeringAgent(parse(current?.value)) !== undefined || ('value' in call && registeringAgent(parse(call.value)) !== undefined);
}

/** Whether the policy needs to know how many clusters this agent has registered: a new record of its own. */
export function needsRegisteredCount(caller: HostCaller, call: BackendCall, current: Item | undefined): boolean {
  return caller.roles.includes('kube') && !current && (call.op === 'put' || call.op === 'create') && kindOfKey(call.key)?.kind.kind === KUBE_CLUSTER;
}

/**
 * How many kube_cluster records this agent registered from its kubeconfig_file. Read raw, not
 * through the checked store: one unreadable record must not stop every agent's registration.
 */
export async function registeredCount(backend: Backend, hostId: string): Promise<number> {
  return (await backend.list(KUBE_CLUSTERS)).filter((item) => registeredBy(parse(item.value), hostId)).length;
}

/**
 * Why a Kubernetes agent may not make this write of a kubeconfig_file cluster (docs/architecture.md §9.1),
 * or undefined: it writes only records of its own (origin kubeconfig, its host id), at most
 * MAX_KUBECONFIG_CLUSTERS of them, valid and printable as a discovered record must be, carrying
 * neither spec.aws nor a kubeconfig; it never replaces nor removes a cluster of another origin or
 * agent. `registered` counts its records now, for a create.
 */
export function kubeconfigClusterRefusal(
  caller: HostCaller,
  call: WriteCall,
  current: Item | undefined,
  registered: number,
  textProblem: (cluster: never) => string | undefined,
): string | undefined {
  if (current && !registeredBy(parse(current.value), caller.hostId)) {
    const holder = registeringAgent(parse(current.value));
    return `may not replace ${call.key}: it is ${holder ? `Kubernetes agent ${holder}'s` : 'not a cluster of its kubeconfig_file'}; rename that context`;
  }
  if ('lease' in call && call.lease) return 'kube_cluster resources are not bound to leases';
  if ('ttl_ms' in call && call.ttl_ms !== undefined) return 'kube_cluster resources do not expire';
  if (call.fence) return 'writes its kubeconfig_file clusters without a fence';
  if (call.op === 'delete') return current ? undefined : `may delete only its own kubeconfig_file clusters`;
  if (!current && registered >= MAX_KUBECONFIG_CLUSTERS) return `registers at most ${MAX_KUBECONFIG_CLUSTERS} kubeconfig_file clusters; it has ${registered}`;
  const parsed = kubeClusterSchema.safeParse(parse(call.value));
  if (!parsed.success) return `is not a valid kube_cluster: ${parsed.error.issues[0]?.message ?? 'invalid'}`;
  const cluster = parsed.data;
  if (`${KUBE_CLUSTERS}${cluster.metadata.name}` !== call.key) return `names ${cluster.metadata.name} but writes ${call.key}`;
  if (!registeredBy(cluster, caller.hostId)) return `may write only kubeconfig_file clusters labelled with its own host id ${caller.hostId}`;
  if (cluster.spec.kubeconfig !== undefined || cluster.spec.aws)
    return 'a kubeconfig_file cluster carries neither spec.aws nor a kubeconfig: the kubeconfig stays at the agent';
  return textProblem(cluster as never);
}

/** Whether a call is this Kubernetes agent's kube_server heartbeat (which refusal() has let through). */
export function isKubeServerBeat(caller: HostCaller, call: BackendCall): boolean {
  if (call.op !== 'put' || !caller.roles.includes('kube')) return false;
  const target = kindOfKey(call.key);
  return target?.kind.kind === KUBE_SERVER && target.name === caller.hostId;
}

/**
 * A kube_server heartbeat as the server stores it: only the clusters this agent may serve
 * (mayServe, the routing's own rule) stay listed. `foreign` are clusters that exist and are not its
 * to serve (another agent's kubeconfig_file cluster, a static one): dropped and to be audited, since
 * an honest agent never lists them. `missing` name no cluster now (one deleted since the agent
 * looked): dropped quietly. The heartbeat is stored rather than refused because a refusal ends an
 * honest agent's Kubernetes service (AccessDeniedError) over such a race, and takes its other
 * clusters away with it. `cached` answers first (the routing's copy); what it does not allow is read
 * from the store, so a cluster registered a moment ago is not dropped for a watch still on its way.
 */
export async function servableHeartbeat(
  value: string,
  hostId: string,
  serverHostId: string | undefined,
  cached: (name: string) => KubeCluster | undefined,
  read: (name: string) => Promise<KubeCluster | undefined>,
  sameJoin: (a: string, b: string) => boolean = () => false,
): Promise<{ value: string; foreign: string[]; missing: string[] }> {
  const beat = JSON.parse(value) as { spec: { clusters?: string[] } };
  const kept: string[] = [];
  const foreign: string[] = [];
  const missing: string[] = [];
  for (const name of beat.spec.clusters ?? []) {
    const seen = cached(name);
    const cluster = seen && mayServe(seen, hostId, serverHostId, sameJoin) ? seen : await read(name);
    if (!cluster) missing.push(name);
    else if (mayServe(cluster, hostId, serverHostId, sameJoin)) kept.push(name);
    else foreign.push(name);
  }
  if (foreign.length === 0 && missing.length === 0) return { value, foreign, missing };
  return { value: JSON.stringify({ ...beat, spec: { ...beat.spec, clusters: kept } }), foreign, missing };
}

function parse(value: string | undefined): { metadata?: { labels?: Record<string, string> } } | undefined {
  if (value === undefined) return undefined;
  try {
    const parsed = JSON.parse(value) as unknown;
    return parsed && typeof parsed === 'object' ? (parsed as never) : undefined;
  } catch {
    return undefined;
  }
}
