/**
 * The reverse tunnel's wire contract between the server and a Kubernetes agent (docs/architecture.md §9).
 *
 * The agent dials the server with its host certificate (ALPN http/1.1) and asks
 * `GET /v1/tunnel` with `Upgrade: kport-tunnel/1`; after the 101 the roles swap on that one TLS
 * connection: the server is the HTTP/2 client, the agent the HTTP/2 server.
 *
 * Each proxied request is one stream the server opens:
 * - an ordinary request: `:method`, `:path` (the path inside the cluster, query included),
 *   `:authority: kport-agent`, the person's headers less hop-by-hop ones, `authorization` and every
 *   `impersonate-*`, and `kport-identity: <JWS>` (identity.ts), which names the cluster;
 * - an upgrade (exec, attach, port-forward): `:method: CONNECT`, `:authority: kport-agent` and
 *   `kport-identity`; the stream then carries the HTTP/1.1 upgrade request as the person sent it
 *   (less credentials and impersonation) and, after the answer, the upgraded bytes both ways.
 */
export const TUNNEL_PATH = '/v1/tunnel';
export const TUNNEL_PROTOCOL = 'kport-tunnel/1';
export const TUNNEL_AUTHORITY = 'kport-agent';
export const IDENTITY_HEADER = 'kport-identity';
