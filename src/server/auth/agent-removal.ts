import type { Backend } from '../../backend/backend.ts';
import { leaderKey } from '../../discovery/leadership.ts';
import { AGENT, type Agent } from '../../resources/agent.ts';
import type { AuditEventSpec } from '../../resources/audit-event.ts';
import { DISCOVERY_SERVICE, type DiscoveryService } from '../../resources/discovery-service.ts';
import { KUBE_SERVER } from '../../resources/kube-server.ts';
import { resourceKey } from '../../resources/resource.ts';
import { getResource, listResources } from '../../resources/store.ts';
import { KUBE_CLUSTER, registeredBy, type KubeCluster } from '../../resources/kube-cluster.ts';

/**
 * Removes the agent's record (the server reads it on every call: once it is gone, so is the agent),
 * and what it said about itself: it is no longer listed as leading or serving (nor are the clusters
 * of its kubeconfig_file), and a leadership it
 * held passes to a standby now rather than when its lease lapses. Audited, as a join is. False when
 * there is no such agent. `kport agents rm` on the store, and an editor's delete of the agent
 * through the server, both come here.
 */
export async function removeAgent(
  backend: Backend,
  hostId: string,
  audit: { record(spec: Omit<AuditEventSpec, 'time'>): Promise<void> },
  by: { user?: string; remote_addr?: string; reason: string },
): Promise<boolean> {
  const agent = await getResource<Agent>(backend, AGENT, hostId);
  if (!agent || !(await backend.delete(resourceKey(AGENT, hostId)))) return false;
  const beat = await getResource<DiscoveryService>(backend, DISCOVERY_SERVICE, hostId);
  for (const group of new Set([agent.spec.discovery_group, beat?.spec.discovery_group].filter((g) => g !== undefined))) {
    const held = await backend.get(leaderKey(group));
    if (held?.value.startsWith(`${hostId}/`)) await backend.delete(held.key, held.revision);
  }
  await backend.delete(resourceKey(DISCOVERY_SERVICE, hostId));
  await backend.delete(resourceKey(KUBE_SERVER, hostId));
  // The clusters of its kubeconfig_file: nobody else can reach them.
  for (const cluster of await listResources<KubeCluster>(backend, KUBE_CLUSTER)) {
    if (registeredBy(cluster, hostId)) await backend.delete(resourceKey(KUBE_CLUSTER, cluster.metadata.name), cluster.metadata.revision);
  }
  await audit.record({
    type: 'agent.remove',
    outcome: 'allowed',
    host_id: hostId,
    hostname: agent.spec.hostname,
    roles: agent.spec.roles,
    token_name: agent.spec.token_name,
    action: 'agents rm',
    reason: by.reason,
    ...(by.user && { user: by.user }),
    ...(by.remote_addr && { remote_addr: by.remote_addr }),
  });
  return true;
}
