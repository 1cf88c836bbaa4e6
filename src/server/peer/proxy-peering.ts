import type { OutgoingHttpHeaders } from 'node:http';
import type { ClientHttp2Stream, ClientSessionRequestOptions } from 'node:http2';
import { hostname } from 'node:os';
import type { SecureContextOptions } from 'node:tls';
import type { Backend } from '../../backend/backend.ts';
import { UserError } from '../../core/errors.ts';
import type { TunnelRegistry } from '../../reversetunnel/tunnel-registry.ts';
import type { Authority } from '../auth/authorities.ts';
import type { WatchHub } from '../cache/watch-hub.ts';
import { PeerClients } from './peer-client.ts';
import { PeerDirectory } from './peer-directory.ts';
import { PeerIdentity } from './peer-identity.ts';
import { PeerListener } from './peer-listener.ts';
import { PeerPresence } from './peer-presence.ts';

export interface PeeringOptions {
  backend: Backend;
  hub: WatchHub;
  tunnels: TunnelRegistry;
  /** The host CA: it signs this server's peer certificate and is the only issuer a peer's may have. */
  hostCa: Authority;
  serverId: string;
  tls: SecureContextOptions;
  now: () => Date;
  log: (line: string) => void;
}

/** Where the peer listener binds, and the address other servers are told to dial (its bound one when unset). */
export interface PeerListen {
  host: string;
  port: number;
  publicAddr?: string;
}

/**
 * Proxy peering, as one piece the server composes (README "Several servers"): this server's
 * presence and its agents' tunnel records in the store, the peer listener other servers forward to,
 * and the sessions it forwards on to them. To the Kubernetes routes it is `holders` and `open`.
 */
export class ProxyPeering {
  readonly #opts: PeeringOptions;
  readonly #directory: PeerDirectory;
  readonly #identity: PeerIdentity;
  readonly #clients: PeerClients;
  #listener?: PeerListener;
  #presence?: PeerPresence;

  constructor(opts: PeeringOptions) {
    this.#opts = opts;
    this.#directory = new PeerDirectory(opts.backend, opts.hub, opts.serverId);
    this.#identity = new PeerIdentity(opts.hostCa, opts.serverId);
    this.#clients = new PeerClients(this.#identity, opts.hostCa.certPem, this.#directory, opts.tls, opts.log);
  }

  holders(hostId: string): number {
    return this.#clients.holders(hostId);
  }

  open(hostId: string, headers: OutgoingHttpHeaders | string[], options?: ClientSessionRequestOptions, tried?: Set<string>): ClientHttp2Stream | undefined {
    return this.#clients.open(hostId, headers, options, tried);
  }

  /** Listens for peers and announces this server; returns the address announced. */
  async start(listen: PeerListen): Promise<string> {
    const opts = this.#opts;
    await this.#identity.start();
    const listener = new PeerListener({
      identity: this.#identity,
      hostCaPem: opts.hostCa.certPem,
      directory: this.#directory,
      tunnels: opts.tunnels,
      tls: opts.tls,
      now: () => opts.now().getTime(),
      log: opts.log,
    });
    this.#listener = listener;
    const bound = await listener.listen(listen.host, listen.port).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL'
        ? new UserError(
            `Cannot listen for peer servers on ${listen.host}:${listen.port} (proxy_service.peer_listen_addr): ${err.code}; set another proxy_service.peer_listen_addr, or port 0 for any free one.`,
          )
        : err;
    });
    const address = listen.publicAddr ?? advertised(bound);
    const presence = new PeerPresence({ backend: opts.backend, serverId: opts.serverId, peerAddr: address, now: opts.now, log: opts.log });
    this.#presence = presence;
    opts.tunnels.onHost((hostId, open) => presence.tunnel(hostId, open));
    // Tunnels already open (the in-process service's loopback one) are announced with the rest.
    for (const hostId of opts.tunnels.hosts()) presence.tunnel(hostId, true);
    await presence.start();
    await this.#directory.ready;
    return address;
  }

  /** Leaves first (the lease revoked: peers stop routing here at once), then stops listening and dialling. */
  async close(): Promise<void> {
    await this.#presence?.close();
    this.#clients.close();
    this.#identity.close();
    this.#directory.close();
    await this.#listener?.close();
  }
}

/** The bound address as peers dial it: on every interface, the machine's name, since 0.0.0.0 is nowhere to dial. */
function advertised(bound: { host: string; port: number }): string {
  const host = bound.host === '0.0.0.0' || bound.host === '::' ? hostname() : bound.host;
  return `${host.includes(':') ? `[${host}]` : host}:${bound.port}`;
}
