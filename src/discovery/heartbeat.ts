import { hostname } from 'node:os';
import type { Backend } from '../backend/backend.ts';
import { DISCOVERY_SERVICE, type DiscoveryService, type DiscoveryServiceSpec } from '../resources/discovery-service.ts';
/** Where it has always been imported from; it lives beside liveState in the resources layer. */
export { withLiveState } from '../resources/discovery-service.ts';
import { HEARTBEAT_LIMITS, safeHostname } from '../resources/heartbeat-limits.ts';
import { upsertResource } from '../resources/store.ts';
import { printableText } from '../resources/text.ts';

/** Keeps this agent's discovery_service resource current; it expires if the agent dies. */
export class Heartbeat {
  readonly #backend: Backend;
  readonly #ttlMs: number;
  readonly #now: () => Date;
  /** How often the agent writes this heartbeat (leader or standby). */
  readonly intervalMs: number;
  #spec: DiscoveryServiceSpec;

  constructor(backend: Backend, init: { hostId: string; discoveryGroup: string; ttlMs: number; intervalMs: number; now: () => Date }) {
    this.#backend = backend;
    this.#ttlMs = init.ttlMs;
    this.#now = init.now;
    this.intervalMs = init.intervalMs;
    this.#spec = {
      host_id: init.hostId,
      hostname: safeHostname(hostname()),
      discovery_group: init.discoveryGroup,
      state: 'starting',
      started: init.now().toISOString(),
      heartbeat_interval_ms: init.intervalMs,
      clusters: { seen: 0, created: 0, updated: 0, deleted: 0 },
      errors: [],
    };
  }

  get spec(): DiscoveryServiceSpec {
    return this.#spec;
  }

  async update(patch: Partial<DiscoveryServiceSpec> = {}): Promise<void> {
    this.#spec = { ...this.#spec, ...patch, last_heartbeat: this.#now().toISOString() };
    // Within what the server accepts (schemas.ts): an AWS error can be long or hold a newline.
    const errors = this.#spec.errors
      .slice(0, HEARTBEAT_LIMITS.errors)
      .map((e) => ({ ...e, scope: printableText(e.scope, HEARTBEAT_LIMITS.scope), error: printableText(e.error, HEARTBEAT_LIMITS.error) }));
    this.#spec = { ...this.#spec, errors };
    const resource: DiscoveryService = {
      kind: DISCOVERY_SERVICE,
      version: 'v1',
      metadata: {
        name: this.#spec.host_id,
        description: `kport discovery agent on ${this.#spec.hostname}`,
        expires: new Date(this.#now().getTime() + this.#ttlMs).toISOString(),
      },
      spec: this.#spec,
    };
    await upsertResource(this.#backend, resource, this.#now().getTime());
  }
}
