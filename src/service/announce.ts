// What an agent says as it starts (as tsh's services do), so a terminal running one is not silent:
// one line when it has joined (or resumed), one when its Kubernetes service is ready. Text on
// stderr, or a JSON line with the event's fields under -o json.
import type { Logger } from '../core/logger.ts';

/** The join, or the identity it resumed with. `server`: HOST:PORT in network mode, none on a local store. */
export function announceJoin(logger: Logger, opts: { joined: boolean; hostId: string; roles: string[]; server?: string; identityDir: string }): void {
  const at = opts.server ? `the kport server at ${opts.server}` : 'the local store';
  const message = opts.joined
    ? `Joined ${at} as agent ${opts.hostId} (${opts.roles.join(', ')}); its identity is in ${opts.identityDir}, so the token is not needed again.`
    : `Resumed as agent ${opts.hostId} (${opts.roles.join(', ')}) of ${at}, with the identity in ${opts.identityDir}.`;
  logger.info(message, {
    event: { type: opts.joined ? 'joined' : 'resumed', host_id: opts.hostId, roles: opts.roles, ...(opts.server && { server: opts.server }) },
  });
}

/**
 * A Kubernetes agent is ready once its tunnel is open and its first kube_server heartbeat is
 * written (the server routes to it only then): said once, with the clusters it serves.
 */
export class KubeReadiness {
  readonly #logger: Logger;
  readonly #server: string;
  readonly #hostId: string;
  #tunnel = false;
  #clusters?: string[];
  #said = false;

  constructor(logger: Logger, server: string, hostId: string) {
    this.#logger = logger;
    this.#server = server;
    this.#hostId = hostId;
  }

  tunnelOpen(): void {
    this.#tunnel = true;
    this.#sayOnce();
  }

  heartbeat(clusters: string[]): void {
    this.#clusters = clusters;
    this.#sayOnce();
  }

  #sayOnce(): void {
    if (this.#said || !this.#tunnel || !this.#clusters) return;
    this.#said = true;
    const clusters = this.#clusters;
    const serving =
      clusters.length === 0
        ? 'no cluster yet (its kubernetes_service selects none)'
        : `${clusters.length} cluster${clusters.length === 1 ? '' : 's'}: ${clusters.slice(0, 10).join(', ')}${clusters.length > 10 ? ', ...' : ''}`;
    this.#logger.info(`Kubernetes service ready: the tunnel to ${this.#server} is open, serving ${serving}.`, {
      event: { type: 'kube_ready', host_id: this.#hostId, server: this.#server, clusters },
    });
  }
}
