import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { ApiError } from '../api/errors.ts';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Backend, WatchEvent } from '../backend/backend.ts';
import { AGENT } from '../resources/agent.ts';
import { currentAgent } from '../resources/agent-record.ts';
import type { AuditEventSpec } from '../resources/audit-event.ts';
import { kindPrefix } from '../resources/resource.ts';
import { TUNNEL_AUTHORITY, TUNNEL_PATH, TUNNEL_PROTOCOL } from './protocol.ts';
import type { TunnelRegistry } from './tunnel-registry.ts';

/** The bounds on reverse tunnels (README "Network mode"). */
export const TUNNEL_LIMITS = {
  /** An agent holds one tunnel, and a second while it replaces the first (a renewed certificate); a third closes the oldest. */
  perHost: 2,
  /** Tunnels open on one server: each costs ~50-100 KiB (TLS + HTTP/2 state); 10,000 stay well inside a GiB. */
  total: 10_000,
  /** A tunnel that carried nothing, not even the agent's PING (every 15 s), for this long is dead and closed. */
  idleMs: 45_000,
  /** Every open tunnel's agent record is read again this often (besides the watch on agent records). */
  recheckMs: 30_000,
} as const;

/**
 * Who holds the connection an upgrade came on, as the listener verified its certificate at the
 * handshake (an ApiError when it did not): a tunnel takes only an agent's.
 */
export type TunnelCaller = { hostId: string; roles: string[]; keyHash: string; notAfter: number } | { person: string } | ApiError;

interface Deps {
  backend: Backend;
  audit: { record(spec: Omit<AuditEventSpec, 'time'>): Promise<void> };
  registry: TunnelRegistry;
  /** The server's shared watch (its WatchHub): agent records' changes close their tunnels. */
  hub: { subscribe(prefix: string, listener: (event: WatchEvent) => void): () => void };
  now: () => Date;
  /** How long a silent tunnel lasts: TUNNEL_LIMITS.idleMs unless a test shortens it. */
  idleMs: number;
}

type AgentHolder = Exclude<TunnelCaller, ApiError | { person: string }>;

interface Open {
  hostId: string;
  keyHash: string;
}

/**
 * The server's side of the reverse tunnel's upgrade (protocol.ts): only a Kubernetes agent's host
 * certificate (the `kube` role), unexpired, whose agent record is current, gets its 101; then the
 * server is the HTTP/2 client on that socket and the tunnel joins the registry. Refusals are one
 * JSON sentence and an audit event; the acceptance is audited once. A tunnel closes when its
 * certificate expires (ConnectionGuard), when its agent is removed or re-keyed (a watch on agent
 * records, and a periodic re-read as its backstop), and when it has been silent for idleMs.
 */
export class TunnelAcceptor {
  readonly #deps: Deps;
  readonly #open = new Map<ClientHttp2Session, Open>();
  readonly #unsubscribe: () => void;
  readonly #recheck: NodeJS.Timeout;

  constructor(deps: Deps) {
    this.#deps = deps;
    const prefix = kindPrefix(AGENT);
    this.#unsubscribe = deps.hub.subscribe(prefix, (event) => {
      const hostId = (event.type === 'delete' ? event.key : event.item.key).slice(prefix.length);
      if (event.type === 'delete') deps.registry.close(hostId);
      else void this.#check(hostId);
    });
    this.#recheck = setInterval(() => {
      for (const hostId of new Set([...this.#open.values()].map((o) => o.hostId))) void this.#check(hostId);
    }, TUNNEL_LIMITS.recheckMs).unref();
  }

  /** `GET /v1/tunnel` with `Upgrade: kport-tunnel/1`, from `holder`, the connection's verified caller. */
  async accept(req: IncomingMessage, socket: Socket, head: Buffer, holder: TunnelCaller | undefined, address: string): Promise<void> {
    let caller: AgentHolder | undefined;
    try {
      caller = this.#agent(req, holder);
      // Refused with its host id in the event: a discovery agent's certificate is not a Kubernetes agent's.
      if (!caller.roles.includes('kube'))
        throw new ApiError(
          'forbidden',
          `agent ${caller.hostId} joined with role ${caller.roles.join(', ')}, and a tunnel needs the kube role: join the Kubernetes agent with a token from \`kport tokens add --type=kube\``,
        );
      const known = await currentAgent(this.#deps.backend, caller.hostId, caller.keyHash);
      if (!known) throw new ApiError('agent_removed', `agent ${caller.hostId} was removed from this cluster (kport agents rm)`);
      if (this.#deps.registry.size >= TUNNEL_LIMITS.total)
        throw new ApiError('busy', `this server holds ${TUNNEL_LIMITS.total} tunnels, its limit: the agent tries again`);
      if (socket.destroyed) return;
    } catch (err) {
      const refused = err instanceof ApiError ? err : new ApiError('internal', 'the server failed to answer this call; its log says why');
      await this.#deps.audit.record({
        type: 'agent.tunnel',
        outcome: 'refused',
        ...(caller && { host_id: caller.hostId, roles: caller.roles }),
        ...(holder && !(holder instanceof ApiError) && 'person' in holder && { user: holder.person }),
        action: `GET ${TUNNEL_PATH}`,
        reason: refused.status === 500 ? `${refused.message}: ${(err as Error).message}` : refused.message,
        remote_addr: address,
      });
      return answer(socket, refused);
    }
    const hostId = caller.hostId;
    // HTTP/2 takes the socket only once the 101 is written: a write of ours still in flight when it
    // does would complete into its session, which aborts the process (node's is_write_in_progress).
    const written = await new Promise<boolean>((resolve) =>
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${TUNNEL_PROTOCOL}\r\n\r\n`, (err) => resolve(!err)),
    );
    if (!written || socket.destroyed) return void socket.destroy();
    if (head.length > 0) socket.unshift(head);
    // The HTTP/1.1 server's idle timer stays on the socket, which no longer sees the bytes HTTP/2
    // reads: the session's own timer (reset by every frame, the agent's PINGs too) is the tunnel's.
    socket.setTimeout(0);
    const session = h2connect(`http://${TUNNEL_AUTHORITY}`, { createConnection: () => socket, settings: { enablePush: false } });
    session.setTimeout(this.#deps.idleMs, () => session.destroy());
    // node resets that timer on a received PING only when the session listens for them.
    session.on('ping', () => {});
    session.on('error', () => {});
    session.once('close', () => {
      this.#open.delete(session);
      socket.destroy();
    });
    const older = this.#deps.registry.sessions(hostId);
    this.#deps.registry.attach(hostId, session);
    this.#open.set(session, { hostId, keyHash: caller.keyHash });
    // A third tunnel of one agent: the oldest goes (a renewal's overlap needs two, never more).
    for (const old of older.slice(0, Math.max(0, older.length + 1 - TUNNEL_LIMITS.perHost))) old.destroy();
    await this.#deps.audit.record({
      type: 'agent.tunnel',
      outcome: 'allowed',
      host_id: hostId,
      roles: caller.roles,
      action: `GET ${TUNNEL_PATH}`,
      remote_addr: address,
    });
  }

  /**
   * The server is draining: a GOAWAY on every tunnel tells its agent to dial a new one now (through
   * the load balancer, to another server); the server opens no new stream on it (the registry skips
   * a closed session) and it ends once the streams open on it have.
   */
  drain(): void {
    for (const session of this.#open.keys()) if (!session.closed && !session.destroyed) session.close();
  }

  close(): void {
    this.#unsubscribe();
    clearInterval(this.#recheck);
    this.#deps.registry.close();
  }

  /** The caller as a tunnel needs it: an agent's host certificate, unexpired. */
  #agent(req: IncomingMessage, holder: TunnelCaller | undefined): AgentHolder {
    if (req.method !== 'GET' || String(req.headers.upgrade ?? '').toLowerCase() !== TUNNEL_PROTOCOL)
      throw new ApiError('bad_request', `a tunnel is GET ${TUNNEL_PATH} with Upgrade: ${TUNNEL_PROTOCOL}`);
    const caller = holder ?? new ApiError('unauthenticated', 'a tunnel needs the host certificate a Kubernetes agent received when it joined');
    if (caller instanceof ApiError) throw caller;
    if ('person' in caller)
      throw new ApiError(
        'forbidden',
        `user ${caller.person}: a tunnel is opened by a Kubernetes agent with its host certificate, not with a person's certificate`,
      );
    if (this.#deps.now().getTime() >= caller.notAfter) {
      throw new ApiError(
        'cert_expired',
        `the host certificate of agent ${caller.hostId} expired at ${new Date(caller.notAfter).toISOString()}: an agent renews it before then; one that could not must join again with a new token`,
      );
    }
    return caller;
  }

  /** Closes the tunnels of `hostId` when its record is gone or names another key. */
  async #check(hostId: string): Promise<void> {
    const keys = new Set([...this.#open.values()].filter((o) => o.hostId === hostId).map((o) => o.keyHash));
    if (keys.size === 0) return;
    for (const keyHash of keys) {
      const known = await currentAgent(this.#deps.backend, hostId, keyHash).catch(() => 'unknown' as const);
      if (known) continue;
      for (const [session, open] of this.#open) if (open.hostId === hostId && open.keyHash === keyHash) session.destroy();
    }
  }
}

/** A refusal as an HTTP/1.1 answer with one JSON sentence; the connection ends with it. */
function answer(socket: Duplex, refused: ApiError): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ error: { code: refused.code, message: refused.message } });
  socket.end(
    `HTTP/1.1 ${refused.status} ${STATUS_CODES[refused.status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** For upgrades no route takes yet: the same one-sentence refusal. */
export function refuseUpgrade(socket: Duplex, refused: ApiError): void {
  answer(socket, refused);
}
