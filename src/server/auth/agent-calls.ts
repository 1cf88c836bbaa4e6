// The agents' calls on the store (/v1/backend, /v1/watch), and who an agent is on each call: its
// certificate unexpired and its record still in the store. The leases agents hold are recorded in
// the store with their holder (agent-leases.ts), so only their holder keeps them alive or attaches
// keys to them, through any server.
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { ApiError } from '../../api/errors.ts';
import { routes } from '../../api/routes.ts';
import { FencedOutError, LeaseExpiredError, type Backend } from '../../backend/backend.ts';
import { AGENT, type Agent } from '../../resources/agent.ts';
import { KUBE_CLUSTER, type KubeCluster } from '../../resources/kube-cluster.ts';
import { KUBE_SERVER } from '../../resources/kube-server.ts';
import { kindPrefix, resourceKey } from '../../resources/resource.ts';
import { encodeResource, getResource } from '../../resources/store.ts';
import { agentEvent, agentItem } from './agent-view.ts';
import { AgentLeases } from './agent-leases.ts';
import { storeHeartbeat } from './beat-lease.ts';
import type { ServerAudit } from '../events/audit.ts';
import type { VerifiedCaller } from '../call/caller.ts';
import { currentAgent } from '../../resources/agent-record.ts';
import { isKubeServerBeat, needsRegisteredCount, registeredCount, servableHeartbeat } from './kube-agent-policy.ts';
import { refusal } from './policy.ts';
import { callProblem, type BackendCall } from './backend-call.ts';
import { applyStoreCall, isKeyCall } from './store-call.ts';
import { streamWatch, type WatchStreamDeps } from './watch-stream.ts';
import { WriteBudget } from './write-budget.ts';

/**
 * How often an agent's record is rewritten to say when it was last heard from, while its address
 * stays the same: at 10,000 agents, once a minute was 167 store writes a second for a column
 * (`kport agents ls`' Last Seen) read by people; once in ten minutes is 17.
 */
const LAST_SEEN_EVERY_MS = 10 * 60_000;
/** A kube_server heartbeat's TTL when its put names none (the policy requires one). */
const HEARTBEAT_TTL_MS = 90_000;

export interface AgentCallsDeps {
  backend: Backend;
  audit: ServerAudit;
  now: () => Date;
  watches: WatchStreamDeps;
  /** The server's own host id (its in-process services'): the only one that serves static clusters. */
  hostId?: string;
  /** The server's cache of clusters, and whether two agents joined with the same token (kube-routes.ts). */
  kube: { cluster(name: string): KubeCluster | undefined; sameJoin(a: string, b: string): boolean };
}

export class AgentCalls {
  readonly #deps: AgentCallsDeps;
  readonly #leases: AgentLeases;
  readonly #touching = new Set<string>();
  readonly #writes = new WriteBudget();

  constructor(deps: AgentCallsDeps) {
    this.#deps = deps;
    this.#leases = new AgentLeases(deps.backend);
  }

  /** The verified host behind this TLS connection (at its handshake), its certificate unexpired and its agent still in the store (every call). */
  async caller(verified: VerifiedCaller, address: string): Promise<VerifiedCaller> {
    if (this.#deps.now().getTime() >= verified.notAfter) {
      throw new ApiError(
        'cert_expired',
        `the host certificate of agent ${verified.hostId} expired at ${new Date(verified.notAfter).toISOString()}: an agent renews it before then; one that could not must join again with a new token`,
      );
    }
    const known = await currentAgent(this.#deps.backend, verified.hostId, verified.keyHash);
    if (!known) throw new ApiError('agent_removed', `agent ${verified.hostId} was removed from this cluster (kport agents rm)`);
    this.#touch(known, address);
    return verified;
  }

  async backend(caller: VerifiedCaller, call: BackendCall, address: string): Promise<unknown> {
    const malformed = callProblem(call);
    if (malformed) throw new ApiError('bad_request', malformed);
    // Before the value is parsed and judged: its size and the agent's write budget.
    this.#writes.charge(caller.hostId, call);
    const backend = this.#deps.backend;
    const needsCurrent = call.op === 'put' || call.op === 'cas' || call.op === 'delete';
    const current = needsCurrent ? await backend.get(call.key) : undefined;
    const registered = needsRegisteredCount(caller, call, current) ? await registeredCount(backend, caller.hostId) : 0;
    const why = refusal(caller, call, current, registered);
    if (why) throw new ApiError('forbidden', `agent ${caller.hostId} (${caller.roles.join(', ')}) ${why}`);
    const beat = call.op === 'put' && isKubeServerBeat(caller, call) ? await this.#servableBeat(caller, call.value, address) : undefined;
    const lease =
      'lease' in call && call.lease !== undefined && call.op !== 'keepalive' && call.op !== 'revoke'
        ? await this.#leases.own(caller.hostId, call.lease)
        : undefined;
    const opts = {
      ...('ttl_ms' in call && call.ttl_ms !== undefined && call.op !== 'grant' && { ttlMs: call.ttl_ms }),
      ...(lease && { lease }),
      ...('fence' in call && call.fence && { fence: call.fence }),
    };
    try {
      // Every item goes back as an agent may see it: never a credential (agent-view.ts).
      // A kube_server heartbeat: written only when it says something new (beat-lease.ts).
      if (beat !== undefined && call.op === 'put') {
        const stored = await storeHeartbeat(backend, call.key, beat, call.ttl_ms ?? HEARTBEAT_TTL_MS, current, this.#deps.now().getTime());
        return { item: (stored && agentItem(stored)) ?? null };
      }
      if (isKeyCall(call)) return await applyStoreCall(backend, call, current, opts, agentItem);
      switch (call.op) {
        case 'grant': {
          const granted = await this.#leases.grant(caller.hostId, call.ttl_ms);
          return { lease: { id: granted.id, ttl_ms: granted.ttlMs } };
        }
        case 'keepalive':
          return { alive: await this.#leases.keepAlive(caller.hostId, call.lease) };
        case 'revoke':
          await this.#leases.revoke(caller.hostId, call.lease);
          return {};
        case 'watch':
          throw new ApiError('bad_request', `watch is its own call: ${routes.watch.method} ${routes.watch.path}`);
      }
    } catch (err) {
      if (err instanceof FencedOutError) throw new ApiError('fenced_out', err.message);
      if (err instanceof LeaseExpiredError) throw new ApiError('lease_expired', err.message);
      throw err;
    }
  }

  async watch(caller: VerifiedCaller, call: BackendCall, req: Http2ServerRequest, res: Http2ServerResponse): Promise<void> {
    if (call.op !== 'watch') throw new ApiError('bad_request', 'a watch needs a prefix');
    const malformed = callProblem(call);
    if (malformed) throw new ApiError('bad_request', malformed);
    const why = refusal(caller, call);
    if (why) throw new ApiError('forbidden', `agent ${caller.hostId} (${caller.roles.join(', ')}) ${why}`);
    const alive = () => currentAgent(this.#deps.backend, caller.hostId, caller.keyHash).then((known) => !!known);
    return streamWatch(this.#deps.watches, caller.hostId, call.prefix, agentEvent, alive, req, res);
  }

  /**
   * Records where and when an agent was last heard from (on the record just read): when its address
   * (without the port: an agent's connections come from many) changed, or LAST_SEEN_EVERY_MS after
   * the time the record says, which every server of a store reads alike.
   */
  #touch({ agent, revision }: { agent: Agent; revision: number }, address: string): void {
    const now = this.#deps.now().getTime();
    const hostId = agent.spec.host_id;
    const host = (a: string | undefined) => a?.replace(/:[^:]*$/, '');
    const moved = host(agent.spec.address) !== host(address);
    if (!moved && now - Date.parse(agent.spec.last_seen ?? '') < LAST_SEEN_EVERY_MS) return;
    // Once per agent in flight: its calls arriving together would each try the same write.
    if (this.#touching.has(hostId)) return;
    this.#touching.add(hostId);
    const touched: Agent = { ...agent, spec: { ...agent.spec, address, last_seen: new Date(now).toISOString() } };
    // At the revision read: a removal in between stays a removal.
    void this.#deps.backend
      .compareAndSwap(resourceKey(AGENT, hostId), encodeResource(touched), revision)
      .catch(() => undefined)
      .finally(() => this.#touching.delete(hostId));
  }

  /** A kube_server heartbeat less the clusters this agent may not serve (kube-agent-policy.ts); a claim on another's is audited. */
  async #servableBeat(caller: VerifiedCaller, value: string, address: string): Promise<string> {
    const read = (name: string) => getResource<KubeCluster>(this.#deps.backend, KUBE_CLUSTER, name);
    const { kube } = this.#deps;
    const checked = await servableHeartbeat(
      value,
      caller.hostId,
      this.#deps.hostId,
      (name) => kube.cluster(name),
      read,
      (a, b) => kube.sameJoin(a, b),
    );
    if (checked.foreign.length > 0) {
      const reason = `listed in its kube_server heartbeat clusters it may not serve (another agent's kubeconfig_file cluster, or a static one only the server serves): ${checked.foreign.join(', ')}; the server dropped them from the heartbeat`;
      await this.#deps.audit.record({
        type: 'agent.call',
        outcome: 'refused',
        host_id: caller.hostId,
        roles: caller.roles,
        action: `put ${kindPrefix(KUBE_SERVER)}${caller.hostId}`,
        reason,
        remote_addr: address,
      });
    }
    return checked.value;
  }
}
