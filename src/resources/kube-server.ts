import type { Resource } from './resource.ts';

export const KUBE_SERVER = 'kube_server';

/** The heartbeat of a Kubernetes service (docs/architecture.md §9): which clusters this host serves; it expires if the host dies. */
export interface KubeServerSpec {
  host_id: string;
  hostname: string;
  /** kube_cluster names its kubernetes_service.resources select. */
  clusters: string[];
  started: string;
  /** When this heartbeat was written (absent from agents before it was added: then expiry tells). */
  last_heartbeat?: string;
}

export type KubeServer = Resource<KubeServerSpec>;
