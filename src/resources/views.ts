import type { Item } from '../backend/backend.ts';

/**
 * A kube_cluster as an agent sees it (docs/architecture.md §9.1, "credentials stay where they are used"):
 * only the fields agents use: its name, description, labels and expiry, and `spec.aws`. A static
 * cluster's `spec.kubeconfig`, or any field a later version adds, stays at the server: an
 * allowlist, so a new credential field is hidden before anyone thinks of it. A cloud cluster
 * carries nothing else, so it passes byte for byte and the discovery engine's compare-and-swap
 * sees exactly what it wrote. Undefined: the item is not shown at all (a kube_cluster that is not
 * JSON could hold anything).
 */
export function clusterWithoutCredentials(item: Item): Item | undefined {
  const stored = parseObject(item.value);
  if (!stored) return undefined;
  const metadata = parseObject(stored.metadata) ?? {};
  const spec = parseObject(stored.spec) ?? {};
  const aws = parseObject(spec.aws);
  const shown = {
    kind: stored.kind,
    version: stored.version,
    metadata: { ...pick(metadata, ['name', 'description', 'expires']), ...(stringMap(metadata.labels) && { labels: metadata.labels }) },
    spec: aws ? { aws: pick(aws, ['name', 'region', 'account_id', 'arn']) } : {},
  };
  return sameFields(stored, shown) ? item : { ...item, value: JSON.stringify(shown) };
}

/** A token's verifier and an agent's credential hash stay at the server: a salted scrypt of a chosen token value is still worth guessing at offline. */
export function withoutVerifiers(item: Item): Item {
  const parsed = parseObject(item.value);
  if (!parsed) return item;
  const { verifier: _v, hash: _h, credential_hash: _c, ...spec } = (parsed.spec ?? {}) as Record<string, unknown>;
  return { ...item, value: JSON.stringify({ ...parsed, spec }) };
}

function stringMap(value: unknown): boolean {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
}

function pick(from: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => from[k] !== undefined).map((k) => [k, from[k]]));
}

/** Whether `shown` kept every field of `stored` (to any depth): then the stored text is what the agent gets. */
function sameFields(stored: unknown, shown: unknown): boolean {
  if (stored === null || typeof stored !== 'object' || Array.isArray(stored)) return stored === shown;
  if (shown === null || typeof shown !== 'object') return false;
  const kept = shown as Record<string, unknown>;
  return (
    Object.entries(stored).every(([k, v]) => (k in kept ? sameFields(v, kept[k]) : false)) &&
    Object.keys(kept).every((k) => kept[k] === undefined || k in stored)
  );
}

/** A JSON object (from its text, or as it is), or undefined: a call's value or a stored record before any schema applies. */
export function parseObject(value: unknown): Record<string, unknown> | undefined {
  let parsed = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value) as unknown;
    } catch {
      return undefined;
    }
  }
  return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
}
