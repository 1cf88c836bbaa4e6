/**
 * How much an agent's heartbeat may hold: the server refuses more (schemas.ts), and agents cut what
 * they pass on from elsewhere (an AWS error, the OS hostname) to fit. A heartbeat is rewritten in
 * place, so these bound what an agent keeps in the store, not only one write: a hostname is a DNS
 * name (253), errors one per failing scope, cut to a readable length.
 */
export const HEARTBEAT_LIMITS = { hostname: 253, errors: 100, scope: 256, error: 1024, clusters: 1_000 } as const;

/**
 * The most any one value an agent writes may hold (413 beyond): a heartbeat is about 1 KiB, a
 * kube_cluster record under 2 KiB, and a kube_server heartbeat naming 1,000 clusters a few tens.
 */
export const AGENT_VALUE_BYTES = 128 * 1024;

/** The cluster names a kube_server heartbeat carries: at most HEARTBEAT_LIMITS.clusters, in well under AGENT_VALUE_BYTES. */
export function heartbeatClusters(names: string[]): string[] {
  const kept: string[] = [];
  let bytes = 0;
  for (const name of names.slice(0, HEARTBEAT_LIMITS.clusters)) {
    bytes += Buffer.byteLength(name) + 3;
    if (bytes > AGENT_VALUE_BYTES / 2) break;
    kept.push(name);
  }
  return kept;
}

/**
 * Why `name` is not an RFC 1123 host name (letters, digits, '-', '_' and '.'; labels of at most 63,
 * 253 in all), or undefined. An agent's hostname is shown in tables next to other agents': spaces,
 * fullwidth letters, fillers or combining marks would let one pass for another.
 */
export function hostnameProblem(what: string, name: string): string | undefined {
  if (!/^[A-Za-z0-9_]([A-Za-z0-9._-]*)$/.test(name)) return `${what} may hold only letters, digits, '-', '_' and '.', starting with a letter or digit`;
  if (name.length > HEARTBEAT_LIMITS.hostname) return `${what} is ${name.length} characters long; at most ${HEARTBEAT_LIMITS.hostname}`;
  if (name.split('.').some((label) => label.length > 63)) return `${what} has a label longer than 63 characters`;
  return undefined;
}

/** This machine's hostname made to fit hostnameProblem: anything else becomes '-', each label and the whole cut to length. */
export function safeHostname(raw: string): string {
  const labels = raw
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^[^A-Za-z0-9_]+/, '')
    .split('.')
    .map((l) => l.slice(0, 63));
  return labels.join('.').slice(0, HEARTBEAT_LIMITS.hostname).replace(/^$/, 'unknown');
}
