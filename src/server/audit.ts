import { randomBytes } from 'node:crypto';
import type { Backend } from '../backend/backend.ts';
import { AUDIT_EVENT, type AuditEvent, type AuditEventSpec } from '../resources/audit-event.ts';
import { upsertResource } from '../resources/store.ts';

export const DEFAULT_AUDIT_RETENTION_MS = 30 * 86_400_000;
const REFUSALS_PER_MINUTE = 120;

/**
 * The server's audit trail (DESIGN.md §9): every join, renewal and refusal, kept in the backend for
 * the retention period (`kport get audit`) and written as a JSON line to the server's log. Token
 * secrets never appear; the token's public name does.
 */
export class ServerAudit {
  readonly #backend: Backend;
  readonly #retentionMs: number;
  readonly #log: (line: string) => void;
  readonly #now: () => Date;
  readonly #windows = new Map<string, { start: number; count: number; dropped: number }>();

  constructor(backend: Backend, opts: { retentionMs?: number; log: (line: string) => void; now?: () => Date }) {
    this.#backend = backend;
    this.#retentionMs = opts.retentionMs ?? DEFAULT_AUDIT_RETENTION_MS;
    this.#log = opts.log;
    this.#now = opts.now ?? (() => new Date());
  }

  /**
   * Records the event; a store failure is logged, never turned into a refusal or a crash. Refusals
   * are stored at most REFUSALS_PER_MINUTE a minute per source address, so a flood of bad calls
   * cannot fill the store; the rest are counted and the count is stored when the minute ends.
   */
  async record(spec: Omit<AuditEventSpec, 'time'>): Promise<void> {
    const now = this.#now();
    if (spec.outcome === 'refused' && !this.#allow(spec.remote_addr, now.getTime())) return;
    await this.#store(spec, now);
  }

  #allow(remote: string | undefined, now: number): boolean {
    const source = (remote ?? '?').replace(/:\d+$/, '');
    let window = this.#windows.get(source);
    if (!window || now - window.start >= 60_000) {
      if (window && window.dropped > 0) {
        void this.#store({ type: 'audit.suppressed', outcome: 'refused', reason: `${window.dropped} more refused calls in one minute were not stored`, remote_addr: source }, new Date(now));
      }
      if (this.#windows.size > 10_000) this.#windows.clear();
      window = { start: now, count: 0, dropped: 0 };
      this.#windows.set(source, window);
    }
    if (window.count >= REFUSALS_PER_MINUTE) {
      window.dropped++;
      return false;
    }
    window.count++;
    return true;
  }

  async #store(spec: Omit<AuditEventSpec, 'time'>, now: Date): Promise<void> {
    const event: AuditEvent = {
      kind: AUDIT_EVENT,
      version: 'v1',
      metadata: { name: `${now.toISOString()}-${randomBytes(4).toString('hex')}`, expires: new Date(now.getTime() + this.#retentionMs).toISOString() },
      spec: { time: now.toISOString(), ...spec },
    };
    this.#log(JSON.stringify({ audit: event.spec }));
    try {
      await upsertResource(this.#backend, event, now.getTime());
    } catch (err) {
      this.#log(JSON.stringify({ level: 'error', msg: `audit event not stored: ${(err as Error).message}`, audit: event.spec }));
    }
  }
}
