/**
 * How much an agent's heartbeat may hold: the server refuses more (schemas.ts), and agents cut what
 * they pass on from elsewhere (an AWS error, the OS hostname) to fit. A heartbeat is rewritten in
 * place, so these bound what an agent keeps in the store, not only one write: a hostname is a DNS
 * name (253), errors one per failing scope, cut to a readable length.
 */
export const HEARTBEAT_LIMITS = { hostname: 253, errors: 100, scope: 256, error: 1024, clusters: 10_000 } as const;
