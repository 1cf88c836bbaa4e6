/**
 * The server's three CAs (docs/architecture.md §9): its own TLS, agents' host certs, people's user certs; and
 * the key that signs the identities the server sends Kubernetes agents (src/reversetunnel/identity.ts),
 * kept the same way, its self-signed certificate the public half agents are given.
 */
export const AUTHORITY_NAMES = ['server_tls', 'host', 'user', 'kube_identity'] as const;
export type AuthorityName = (typeof AUTHORITY_NAMES)[number];

/**
 * Where an authority is stored. The server keeps them (src/server/auth/authorities.ts); the server's host
 * reads the TLS one's pin from the store for the `kport login` line `tokens add` and `users add` print
 * (src/tokens/server-info.ts).
 */
export function caKey(name: AuthorityName): string {
  return `/authorities/${name}`;
}
