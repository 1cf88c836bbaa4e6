/** How long the server sends the same signed identity for the same person, cluster, identity and agent. */
export const IDENTITY_REUSE_MS = 60_000;
/** An identity this close to its expiry is not sent again: it must outlast the request's first bytes. */
const MIN_LEFT_MS = 10_000;
const MAX_ENTRIES = 10_000;

interface Entry {
  token: string;
  sessionId: string;
  /** Epoch ms. */
  expires: number;
  until: number;
}

/**
 * Signed identities by what they say (person, certificate, cluster, Kubernetes user and groups,
 * agent): a signature costs ~170 µs, so a person's requests within a minute share one, and its id
 * (the audit's session_id, the cluster's kport.dev/session-id) joins them.
 */
export class IdentityCache {
  readonly #entries = new Map<string, Entry | Promise<Entry>>();

  async get(key: string, sign: () => Promise<{ token: string; sessionId: string; expires: number }>): Promise<{ token: string; sessionId: string }> {
    const now = Date.now();
    const held = this.#entries.get(key);
    if (held && !(held instanceof Promise) && held.until > now && held.expires - now > MIN_LEFT_MS) return held;
    if (held instanceof Promise) return held;
    if (this.#entries.size >= MAX_ENTRIES) this.#entries.clear();
    const pending = sign().then((s) => {
      const entry = { ...s, until: now + IDENTITY_REUSE_MS };
      this.#entries.set(key, entry);
      return entry;
    });
    this.#entries.set(key, pending);
    pending.catch(() => this.#entries.delete(key));
    return pending;
  }
}
