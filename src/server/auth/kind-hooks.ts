// The write hooks of the kinds that need more than a role's verb (docs/architecture.md §9): what
// makes a write an agent's own, or a record valid, beyond "this caller may create this kind".
// They live at the server, not in the descriptors (src/resources/kinds.ts), because they read
// what only the server layer knows: leader keys, kubeconfig_file limits, create -f's schemas.
// A kind agents may write and that has no hook here is refused to them (src/server/auth/gate.ts).
import type { Item } from '../../backend/backend.ts';
import { DISCOVERY_SERVICE, leaderKey } from '../../resources/discovery-service.ts';
import { KUBE_CLUSTER, ownedBy } from '../../resources/kube-cluster.ts';
import { KUBE_SERVER } from '../../resources/kube-server.ts';
import { kindPrefix } from '../../resources/resource.ts';
import { ROLE } from '../../resources/role.ts';
import { discoveryServiceSchema, kubeClusterSchema, kubeServerSchema, roleSchema } from '../../resources/schemas.ts';
import { freeTextProblem } from '../../resources/text.ts';
import { parseObject } from '../../resources/views.ts';
import { isKubeconfigClusterWrite, kubeconfigClusterRefusal } from './kube-agent-policy.ts';
import type { BackendCall } from './backend-call.ts';
import type { HostCaller } from '../call/caller.ts';

export type WriteCall = Extract<BackendCall, { op: 'put' | 'create' | 'cas' | 'delete' }>;

/** Why an agent (whose roles may write the kind) may not make this write of record `name`; undefined: it may. */
export type AgentWriteHook = (caller: HostCaller, call: WriteCall, name: string, current: Item | undefined, registered: number) => string | undefined;

/** Why a person (whose roles allow the verb) may not write this value; undefined: they may. */
export type PersonWriteHook = (value: Record<string, unknown>, current: Item | undefined) => string | undefined;

const MAX_HEARTBEAT_TTL_MS = 86_400_000;
const KUBE_CLUSTERS = kindPrefix(KUBE_CLUSTER);
const has = (caller: HostCaller, role: string) => caller.roles.includes(role);

export const AGENT_WRITES: Record<string, AgentWriteHook> = {
  /**
   * A discovery agent writes only kube_cluster of origin cloud in its own group (as the group's
   * leader, with `spec.aws`, never a kubeconfig); a Kubernetes agent its own kubeconfig_file
   * clusters (kube-agent-policy.ts; `registered`: how many it has now).
   */
  [KUBE_CLUSTER]: (caller, call, _name, current, registered) => {
    if (has(caller, 'kube') && isKubeconfigClusterWrite(call, current))
      return kubeconfigClusterRefusal(caller, call, current, registered, discoveredTextProblem);
    if (!has(caller, 'discovery'))
      return 'may not write kube_cluster resources: only discovery agents do, and Kubernetes agents those of their kubeconfig_file';
    return clusterWriteRefusal(caller, call, current);
  },
  [DISCOVERY_SERVICE]: (caller, call, name) =>
    name !== caller.hostId
      ? `may not write ${call.key}`
      : heartbeatRefusal(
          caller,
          call,
          DISCOVERY_SERVICE,
          discoveryServiceSchema,
          (spec) => spec.host_id === caller.hostId && spec.discovery_group === caller.group,
        ),
  [KUBE_SERVER]: (caller, call, name) =>
    name !== caller.hostId
      ? `may not write ${call.key}`
      : heartbeatRefusal(caller, call, KUBE_SERVER, kubeServerSchema, (spec) => spec.host_id === caller.hostId),
};

export const PERSON_WRITES: Record<string, PersonWriteHook> = {
  [ROLE]: (value) => {
    const checked = roleSchema.safeParse(value);
    return checked.success ? undefined : `wrote a role that is not valid: ${checked.error.issues[0]?.message ?? 'invalid'}`;
  },
  [KUBE_CLUSTER]: (value, current) => {
    const checked = kubeClusterSchema.safeParse(value);
    if (!checked.success) return `wrote a kube_cluster that is not valid: ${checked.error.issues[0]?.message ?? 'invalid'}`;
    // Discovered clusters are their discovery group's to write: a person's edit would be undone, or forge one.
    if (checked.data.spec.aws || (current && (parseObject(current.value)?.spec as { aws?: unknown } | undefined)?.aws))
      return 'may write only static kube_clusters: discovered ones belong to their discovery agents';
    return undefined;
  },
};

/**
 * A heartbeat is the agent's own, and valid by its schema: every field bounded and its free text
 * (hostname, errors) printable, since `kport get discovery_service` shows it on an admin's terminal.
 */
function heartbeatRefusal(
  caller: HostCaller,
  call: WriteCall,
  kind: string,
  schema: HeartbeatSchema,
  specOk: (spec: Record<string, unknown>) => boolean,
): string | undefined {
  if (call.op !== 'put' || call.lease || call.fence) return `writes its ${kind} heartbeat only with a plain put`;
  if (!(call.ttl_ms !== undefined && call.ttl_ms > 0 && call.ttl_ms <= MAX_HEARTBEAT_TTL_MS)) return `a ${kind} heartbeat needs a TTL of at most a day`;
  const value = parse(call.value);
  if (value?.kind !== kind || value.metadata?.name !== caller.hostId || !specOk(value.spec ?? {}))
    return `may write only its own ${kind} heartbeat (host ${caller.hostId}, discovery group "${caller.group}")`;
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return `wrote a ${kind} heartbeat that is not valid: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`;
  }
  return undefined;
}

type HeartbeatSchema = typeof discoveryServiceSchema | typeof kubeServerSchema;

function clusterWriteRefusal(caller: HostCaller, call: WriteCall, current: Item | undefined): string | undefined {
  const leader = leaderKey(caller.group);
  if (!call.fence || call.fence.key !== leader || !call.fence.value.startsWith(`${caller.hostId}/`))
    return `writes kube_cluster resources only as the leader of discovery group "${caller.group}"`;
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
  return discoveredTextProblem(cluster);
}

/**
 * What a discovered cluster's record shows on an admin's terminal (`kport get`, `kube ls`) is
 * printable and bounded, as in heartbeats; and it does not expire: discovery deletes what it no
 * longer sees, and a date set by an agent would only hide or keep a cluster against that.
 */
function discoveredTextProblem(cluster: {
  metadata: { description?: string; labels?: Record<string, string>; expires?: string };
  spec: { aws?: { name: string; region: string; arn?: string } };
}): string | undefined {
  if (cluster.metadata.expires !== undefined) return 'writes kube_cluster resources without metadata.expires: discovery deletes what it no longer sees';
  const texts: Array<[string, string | undefined, number]> = [
    ['metadata.description', cluster.metadata.description, 1024],
    ['spec.aws.name', cluster.spec.aws?.name, 100],
    ['spec.aws.region', cluster.spec.aws?.region, 64],
    ['spec.aws.arn', cluster.spec.aws?.arn, 2048],
    ...Object.entries(cluster.metadata.labels ?? {}).map(([k, v]): [string, string, number] => [`label ${k}`, v, 256]),
  ];
  for (const [what, text, max] of texts) {
    const problem = text === undefined ? undefined : freeTextProblem(what, text, max);
    if (problem) return `wrote a kube_cluster that is not valid: ${problem}`;
  }
  return undefined;
}

/** A call's value (or a record it replaces) as far as the hooks look into it before its schema: not yet trusted. */
function parse(value: string): { kind?: string; metadata?: { name?: string; labels?: Record<string, string> }; spec?: Record<string, unknown> } | undefined {
  try {
    const parsed = JSON.parse(value) as unknown;
    return parsed && typeof parsed === 'object' ? (parsed as never) : undefined;
  } catch {
    return undefined;
  }
}
