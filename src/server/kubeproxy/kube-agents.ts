import type { Backend } from '../../backend/backend.ts';
import { mayServe, type KubeCluster } from '../../resources/kube-cluster.ts';
import { KUBE_SERVER, type KubeServer } from '../../resources/kube-server.ts';
import { AGENT, type Agent } from '../../resources/agent.ts';
import { ResourceCache } from '../cache/resource-cache.ts';
import type { TunnelRegistry } from '../../reversetunnel/tunnel-registry.ts';
import type { WatchHub } from '../cache/watch-hub.ts';

/** Agents whose tunnels end on another live server (proxy peering: server/peer/). */
export interface PeerReach {
  /** How many other live servers hold a tunnel of the agent (0: it is not reached through peers). */
  holders(hostId: string): number;
}

/**
 * Which agents may serve a cluster right now: those whose kube_server heartbeat is fresh (not past
 * its expiry) and lists the cluster, that hold an open tunnel to this server, and that the cluster's
 * record lets serve it (mayServe): a heartbeat alone never hands one agent's cluster, its requests
 * and its people's identities to another. The heartbeats are kept in memory from a watch; the
 * tunnels are the registry's, or, with several servers, another live server's (`peers`: a tunnel
 * record on that server's lease).
 */
export class KubeAgents {
  readonly #tunnels: TunnelRegistry;
  readonly #heartbeats: ResourceCache<KubeServer>;
  /** Agents by host id, for the token each joined with: agents of one token serve each other's kubeconfig_file clusters. */
  readonly #agents: ResourceCache<Agent>;
  readonly #now: () => number;
  /** The server's own host id: its in-process service alone serves static clusters. */
  readonly #serverHostId: string | undefined;
  /** cluster name -> host ids whose heartbeat lists it; rebuilt when a heartbeat changes. */
  #byCluster = new Map<string, string[]>();
  readonly #peers: PeerReach | undefined;

  constructor(backend: Backend, hub: WatchHub, tunnels: TunnelRegistry, serverHostId: string | undefined, now: () => number = Date.now, peers?: PeerReach) {
    this.#tunnels = tunnels;
    this.#peers = peers;
    this.#serverHostId = serverHostId;
    this.#now = now;
    this.#heartbeats = new ResourceCache<KubeServer>(backend, hub, KUBE_SERVER, () => this.#index());
    this.#agents = new ResourceCache<Agent>(backend, hub, AGENT);
  }

  get ready(): Promise<void> {
    return Promise.all([this.#heartbeats.ready, this.#agents.ready]).then(() => undefined);
  }

  /** Whether two agents joined with the same token: one Kubernetes service for mayServe. */
  readonly sameJoin = (a: string, b: string): boolean => {
    const token = this.#agents.get(a)?.spec.token_name;
    return token !== undefined && token !== '' && token === this.#agents.get(b)?.spec.token_name;
  };

  /**
   * Host ids that may serve `cluster`: those with a tunnel to this server first, then those reached
   * through another server (listed once per server holding its tunnel), each group in a random order
   * (requests spread over them, and the next is tried when one fails).
   */
  candidates(cluster: KubeCluster): string[] {
    const now = this.#now();
    const local: string[] = [];
    const peered: string[] = [];
    for (const host of this.#byCluster.get(cluster.metadata.name) ?? []) {
      if (!mayServe(cluster, host, this.#serverHostId, this.sameJoin)) continue;
      const beat = this.#heartbeats.get(host);
      const expires = beat?.metadata.expires ? Date.parse(beat.metadata.expires) : Infinity;
      if (beat === undefined || expires <= now) continue;
      if (this.#tunnels.sessions(host).length > 0) local.push(host);
      // Once per server holding its tunnel: a request tries each before giving the agent up (PeerClients.open).
      else for (let n = this.#peers?.holders(host) ?? 0; n > 0; n--) peered.push(host);
    }
    return [...shuffled(local), ...shuffledGroups(peered)];
  }

  close(): void {
    this.#heartbeats.close();
    this.#agents.close();
  }

  #index(): void {
    const byCluster = new Map<string, string[]>();
    for (const beat of this.#heartbeats.values()) {
      for (const cluster of beat.spec.clusters ?? []) {
        let hosts = byCluster.get(cluster);
        if (!hosts) byCluster.set(cluster, (hosts = []));
        // The record's name, which the server's policy lets an agent write only as its own host id.
        hosts.push(beat.metadata.name);
      }
    }
    this.#byCluster = byCluster;
  }
}

function shuffled(hosts: string[]): string[] {
  for (let i = hosts.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [hosts[i], hosts[j]] = [hosts[j]!, hosts[i]!];
  }
  return hosts;
}

/** Shuffled by agent, each agent's repeats kept together: its holders are tried one after another, newest first. */
function shuffledGroups(hosts: string[]): string[] {
  return shuffled([...new Set(hosts)]).flatMap((host) => hosts.filter((h) => h === host));
}
