import type { Fence, Item } from '../backend/backend.ts';
import { ApiError } from '../api/errors.ts';
import { leaderKey } from '../discovery/leadership.ts';
import { DISCOVERY_SERVICE } from '../resources/discovery-service.ts';
import { KUBE_CLUSTER, ownedBy } from '../resources/kube-cluster.ts';
import { KUBE_SERVER } from '../resources/kube-server.ts';
import { kindPrefix } from '../resources/resource.ts';
import { discoveryServiceSchema, kubeClusterSchema, kubeServerSchema } from '../resources/schemas.ts';
import { isKubeconfigClusterWrite, kubeconfigClusterRefusal } from './kube-agent-policy.ts';
import { LIMITS } from './limits.ts';
import { freeTextProblem } from '../resources/text.ts';

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
 * A discovery agent reads kube_cluster and its group's leader key; it writes only kube_cluster of
 * origin cloud in its own group (as the group's leader, with `spec.aws`, never a kubeconfig), its
 * own heartbeat and its own leader claim. A Kubernetes agent reads kube_cluster and writes its own
 * kube_server heartbeat and its own kubeconfig_file clusters (kube-agent-policy.ts). `current` is what the key holds now, for writes that replace or delete.
 */
export function refusal(caller: HostCaller, call: BackendCall, current?: Item, registered = 0): string | undefined {
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
    // A Kubernetes agent's own kubeconfig_file clusters (`registered`: how many it has now).
    if (kube && isKubeconfigClusterWrite(call, current)) return kubeconfigClusterRefusal(caller, call, current, registered, discoveredTextProblem);
    if (!discovery) return 'may not write kube_cluster resources: only discovery agents do, and Kubernetes agents those of their kubeconfig_file';
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
    return heartbeatRefusal(caller, call, DISCOVERY_SERVICE, discoveryServiceSchema, (spec) => spec.host_id === caller.hostId && spec.discovery_group === caller.group);
  }
  if (key === `${kindPrefix(KUBE_SERVER)}${caller.hostId}`) {
    if (!kube) return `may not write ${key}`;
    return heartbeatRefusal(caller, call, KUBE_SERVER, kubeServerSchema, (spec) => spec.host_id === caller.hostId);
  }
  return `may not write ${key}`;
}

/**
 * A heartbeat is the agent's own, and valid by its schema: every field bounded and its free text
 * (hostname, errors) printable, since `kport get discovery_service` shows it on an admin's terminal.
 */
function heartbeatRefusal(caller: HostCaller, call: BackendCall, kind: string, schema: HeartbeatSchema, specOk: (spec: Record<string, unknown>) => boolean): string | undefined {
  if (call.op !== 'put' || call.lease || call.fence) return `writes its ${kind} heartbeat only with a plain put`;
  if (!(call.ttl_ms !== undefined && call.ttl_ms > 0 && call.ttl_ms <= MAX_HEARTBEAT_TTL_MS)) return `a ${kind} heartbeat needs a TTL of at most a day`;
  const value = parse(call.value);
  if (value?.kind !== kind || value.metadata?.name !== caller.hostId || !specOk(value.spec ?? {})) return `may write only its own ${kind} heartbeat (host ${caller.hostId}, discovery group "${caller.group}")`;
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return `wrote a ${kind} heartbeat that is not valid: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`;
  }
  return undefined;
}

type HeartbeatSchema = typeof discoveryServiceSchema | typeof kubeServerSchema;

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
  return discoveredTextProblem(cluster);
}

/**
 * What a discovered cluster's record shows on an admin's terminal (`kport get`, `kube ls`) is
 * printable and bounded, as in heartbeats; and it does not expire: discovery deletes what it no
 * longer sees, and a date set by an agent would only hide or keep a cluster against that.
 */
function discoveredTextProblem(cluster: { metadata: { description?: string; labels?: Record<string, string>; expires?: string }; spec: { aws?: { name: string; region: string; arn?: string } } }): string | undefined {
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

function parse(value: string): { kind?: string; metadata?: { name?: string; labels?: Record<string, string> }; spec?: Record<string, unknown> } | undefined {
  try {
    const parsed = JSON.parse(value) as unknown;
    return parsed && typeof parsed === 'object' ? (parsed as never) : undefined;
  } catch {
    return undefined;
  }
}

/** A /v1/backend or /v1/watch body as a BackendCall; a ApiError when it is not one. */
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
  if (!ok) throw new ApiError('bad_request', `not a backend call: ${JSON.stringify(call?.op ?? null)}`);
  return call as unknown as BackendCall;
}

/** What an audit event says was asked: the backend operation and its key, or the route. */
export function describeCall(path: string, body: unknown): string {
  const call = body as { op?: unknown; key?: unknown; prefix?: unknown } | null;
  return call && typeof call.op === 'string' ? `${call.op} ${String(call.key ?? call.prefix ?? '')}`.trim() : path;
}
