import type { ServerHttp2Session } from 'node:http2';
import { AccessDeniedError } from '../backend/backend.ts';
import { ApiError } from '../api/errors.ts';
import type { ServerAddress } from '../client/server-client.ts';
import { UserError } from '../core/errors.ts';
import { identityDir, readIdentityFile } from '../join/identity.ts';
import { runAgentTunnel } from './agent-dial.ts';

export interface KubeTunnelOptions {
  dataDir: string;
  server: ServerAddress;
  /** The agent's identity, which its renewal updates in place: read at each dial. */
  identity: { credential: { cert: string; ca: string } };
  /** TUNNEL_PING_MS unless a test shortens it. */
  pingMs?: number;
  signal: AbortSignal;
  warn: (message: string) => void;
  /** The server refused the tunnel for good (the agent was removed): an AccessDeniedError, as its other calls give. */
  onFatal: (err: Error) => void;
  /** Serves the requests the server sends on each tunnel (AgentKubeService). */
  onSession: (session: ServerHttp2Session) => void;
  onOpen?: () => void;
}

/**
 * The Kubernetes agent's reverse tunnel beside its heartbeat (`kport discover run` with
 * kubernetes_service and teleport.proxy_server): the server's requests arrive on it. Returns what
 * waits for it to end once `signal` aborts.
 */
export function startKubeTunnel(opts: KubeTunnelOptions): Promise<void> {
  // The key never changes (a renewal keeps it); the certificate and CA are read at each dial.
  // Read as joinServer read it: the agent's own, and no one else's to read or replace.
  const key = readIdentityFile(opts.dataDir, 'key.pem');
  if (key === undefined)
    throw new UserError(`This agent's key is missing from ${identityDir(opts.dataDir)}: remove that directory and join again with a new token.`, 4);
  return runAgentTunnel({
    server: opts.server,
    credentials: () => ({ cert: opts.identity.credential.cert, ca: opts.identity.credential.ca, key }),
    signal: opts.signal,
    warn: opts.warn,
    onSession: opts.onSession,
    onOpen: opts.onOpen,
    pingMs: opts.pingMs,
  }).catch((err: unknown) => {
    opts.onFatal(err instanceof ApiError ? new AccessDeniedError(err.code, err.message) : (err as Error));
  });
}
