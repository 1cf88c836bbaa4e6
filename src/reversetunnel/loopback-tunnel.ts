import { connect, performServerHandshake, type ServerHttp2Session } from 'node:http2';
import { duplexPair } from 'node:stream';
import type { TunnelRegistry } from './tunnel-registry.ts';

/**
 * The server's in-process Kubernetes service as one more tunnel (docs/architecture.md §9.1: static clusters
 * with a kubeconfig inside are served only where the store is): the same HTTP/2 roles as a reverse
 * tunnel, over an in-memory pair instead of TLS, so the routing treats it like any agent. `serve`
 * is the agent side (AgentKubeService.serve). Returns what closes it.
 */
export function openLoopbackTunnel(registry: TunnelRegistry, hostId: string, serve: (session: ServerHttp2Session) => void): () => void {
  const [serverSide, agentSide] = duplexPair();
  const session = connect('http://kport-agent', { createConnection: () => serverSide });
  session.on('error', () => {});
  const agentSession = performServerHandshake(agentSide);
  agentSession.on('error', () => {});
  serve(agentSession);
  registry.attach(hostId, session);
  return () => {
    session.destroy();
    agentSession.destroy();
  };
}
