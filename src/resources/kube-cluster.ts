import type { Resource } from './resource.ts';

export const KUBE_CLUSTER = 'kube_cluster';

/** Labels kport sets on what it discovers; `kport.internal/*` are hidden from people. */
export const LABEL = {
  region: 'region',
  accountId: 'account-id',
  cloud: 'kport.dev/cloud',
  origin: 'kport.dev/origin',
  discoveryType: 'kport.dev/discovery-type',
  discoveredName: 'kport.internal/discovered-name',
  discoveryGroup: 'kport.internal/discovery-group-name',
  /** The Kubernetes agent that registered a kubeconfig_file cluster and alone serves it. */
  agentHost: 'kport.internal/kube-agent-host-id',
} as const;

/** The origin of a cluster a Kubernetes agent registered from its own kubeconfig_file. */
export const KUBECONFIG_ORIGIN = 'kubeconfig';

/** Labels kport sets itself; a config's kubernetes_service.labels may not. */
export function reservedLabel(key: string): boolean {
  return key === LABEL.origin || key.startsWith('kport.internal/');
}

/**
 * A cluster from this agent's kubeconfig_file: what it alone may write and delete, and serves.
 * Its record carries neither spec.aws nor spec.kubeconfig: the kubeconfig never leaves the agent.
 */
export function registeredBy(resource: { metadata?: { labels?: Record<string, string> } } | undefined, hostId: string): boolean {
  const labels = resource?.metadata?.labels ?? {};
  return labels[LABEL.origin] === KUBECONFIG_ORIGIN && labels[LABEL.agentHost] === hostId;
}

/** The agent serving a kubeconfig_file cluster, or undefined for every other cluster. */
export function registeringAgent(resource: { metadata?: { labels?: Record<string, string> } } | undefined): string | undefined {
  const labels = resource?.metadata?.labels ?? {};
  return labels[LABEL.origin] === KUBECONFIG_ORIGIN ? labels[LABEL.agentHost] : undefined;
}

/**
 * Whether host `hostId` may serve this cluster (docs/architecture.md §9.1), at the routing and in a kube_server
 * heartbeat alike: a kubeconfig_file cluster only the agent that registered it (only it holds that
 * kubeconfig); a static cluster (spec.kubeconfig, kept in the server's store alone) only the server's
 * in-process service, `serverHostId`; an EKS cluster (spec.aws) any Kubernetes service that says so,
 * each with its own AWS identity (Teleport's rule: any kube service whose resources select it). A
 * record with none of these no one serves. Agents joined with one token are one service
 * (`sameJoin`): they serve each other's kubeconfig_file clusters, which is how several agents with
 * one kubeconfig serve a cluster together.
 */
export function mayServe(
  cluster: { metadata?: { labels?: Record<string, string> }; spec?: { aws?: unknown; kubeconfig?: unknown } },
  hostId: string,
  serverHostId: string | undefined,
  sameJoin: (a: string, b: string) => boolean = () => false,
): boolean {
  const agent = registeringAgent(cluster);
  if (agent !== undefined) return agent === hostId || sameJoin(agent, hostId);
  if (cluster.spec?.kubeconfig !== undefined) return hostId === serverHostId;
  return cluster.spec?.aws !== undefined && cluster.spec.aws !== null;
}

export interface KubeClusterSpec {
  aws?: { name: string; region: string; account_id: string; arn?: string };
  /** A kubeconfig (YAML text) for a static, non-EKS cluster; its current context is used. */
  kubeconfig?: string;
}

export type KubeCluster = Resource<KubeClusterSpec>;

/** Discovered from the cloud by an agent of this discovery group: what that group's leader may write and delete. */
export function ownedBy(resource: { metadata?: { labels?: Record<string, string> } } | undefined, group: string): boolean {
  const labels = resource?.metadata?.labels ?? {};
  return labels[LABEL.origin] === 'cloud' && (labels[LABEL.discoveryGroup] ?? '') === group;
}

/** The short name people know a discovered cluster by (the EKS name). */
export function discoveredName(cluster: KubeCluster): string | undefined {
  return cluster.metadata.labels?.[LABEL.discoveredName];
}
