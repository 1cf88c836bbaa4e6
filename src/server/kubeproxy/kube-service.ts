import type { Backend } from '../../backend/backend.ts';
import type { KubernetesServiceConfig } from '../../config/schema.ts';
import { AgentKubeService } from '../../reversetunnel/agent-service.ts';
import { runKubeServerHeartbeat } from '../../kube/server-heartbeat.ts';
import { servedClustersOf } from '../../kube/served-clusters.ts';
import type { Authorities } from '../auth/authorities.ts';
import { openLoopbackTunnel } from '../../reversetunnel/loopback-tunnel.ts';
import type { TunnelRegistry } from '../../reversetunnel/tunnel-registry.ts';

export interface InProcessKubeServiceOptions {
  backend: Backend;
  tunnels: TunnelRegistry;
  authorities: Authorities;
  /** The server's own host id (serverHostId): the heartbeat's name and the identities' audience. */
  hostId: string;
  service: KubernetesServiceConfig;
  cwd: string;
  env: NodeJS.ProcessEnv;
  warn: (message: string) => void;
  signal: AbortSignal;
  now?: () => Date;
}

/**
 * The server's own Kubernetes service (docs/architecture.md §9.1): the clusters only the server can reach
 * (static clusters whose kubeconfig is in the store, EKS clusters its resources select with the
 * server's AWS identity, its own kubeconfig_file contexts) served as an agent would serve them,
 * on a loopback tunnel, so the routing treats the server like any agent: the same signed identity,
 * the same impersonation, the same heartbeat. A kubeconfig_file that cannot be used throws at once
 * (the server does not start); otherwise runs until `signal`.
 */
export function runInProcessKubeService(opts: InProcessKubeServiceOptions): Promise<void> {
  const served = servedClustersOf({
    backend: opts.backend,
    hostId: opts.hostId,
    service: opts.service,
    cwd: opts.cwd,
    env: opts.env,
    warn: opts.warn,
    ...(opts.now && { now: opts.now }),
  });
  const agent = new AgentKubeService({
    hostId: opts.hostId,
    identityKey: () => opts.authorities.kube_identity.keys.publicKey,
    upstream: (cluster) => served.upstream(cluster),
    warn: opts.warn,
  });
  const close = openLoopbackTunnel(opts.tunnels, opts.hostId, (session) => agent.serve(session));
  return runKubeServerHeartbeat({
    backend: opts.backend,
    hostId: opts.hostId,
    service: opts.service,
    signal: opts.signal,
    served,
    ...(opts.now && { now: opts.now }),
  }).finally(close);
}
