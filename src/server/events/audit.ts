import { randomBytes } from 'node:crypto';
import { isIPv6 } from 'node:net';
import type { Backend } from '../../backend/backend.ts';
import { AUDIT_EVENT, type AuditEvent, type AuditEventSpec } from '../../resources/audit-event.ts';
import { resourceKey } from '../../resources/resource.ts';
import { encodeResource, upsertResource } from '../../resources/store.ts';
import { printableText } from '../../resources/text.ts';

export const DEFAULT_AUDIT_RETENTION_MS = 30 * 86_400_000;
/** Refused calls stored (and logged) per source a minute; the rest are counted. */
export const REFUSALS_PER_MINUTE = 120;
/** Bytes of refused-call events and failure lines one source may make the server store and log a minute. */
export const REFUSAL_BYTES_PER_MINUTE = 64 * 1024;
/** The longest text an event copies from a request (a key, a reason that names one, a hostname). */
export const MAX_AUDIT_FIELD = 256;
const MAX_ROLES = 16;
const MAX_SOURCES = 10_000;
/** Events of Kubernetes requests waiting for their batched store write; past this, counted and dropped. */
export const MAX_QUEUED_EVENTS = 10_000;
/** Events per store transaction: etcd refuses transactions of more than 128 operations by default. */
const EVENTS_PER_TXN = 100;

type EventSpec = Omit<AuditEventSpec, 'time'>;
interface Window {
  start: number;
  count: number;
  bytes: number;
  dropped: number;
}

/**
 * How long request events wait to be stored together; a kill -9 loses at most these from the store
 * (never from the log). Every other event (joins, logins, refusals, store calls) is stored by
 * record() before the request it describes is answered, on whichever server answered it.
 */
const QUEUE_WAIT_MS = 50;

/**
 * The server's audit trail (docs/architecture.md §9): every join, renewal and refusal, kept in the backend for
 * the retention period (`kport get audit`) and written as a JSON line to the server's log. Token
 * secrets never appear; the token's public name does. What a caller can make it keep is bounded
 * twice: each field an event copies from a request is cut to MAX_AUDIT_FIELD characters (with the
 * length it had), and each source gets REFUSALS_PER_MINUTE events and REFUSAL_BYTES_PER_MINUTE
 * bytes of refusals and failure lines a minute.
 */
export class ServerAudit {
  readonly #backend: Backend;
  readonly #retentionMs: number;
  readonly #log: (line: string) => void;
  readonly #now: () => Date;
  readonly #windows = new Map<string, Window>();
  #queued: AuditEvent[] = [];
  #flushing?: Promise<void>;
  #droppedQueued = 0;

  constructor(backend: Backend, opts: { retentionMs?: number; log: (line: string) => void; now?: () => Date }) {
    this.#backend = backend;
    this.#retentionMs = opts.retentionMs ?? DEFAULT_AUDIT_RETENTION_MS;
    this.#log = opts.log;
    this.#now = opts.now ?? (() => new Date());
  }

  /**
   * Records the event; a store failure is logged, never turned into a refusal or a crash. A refusal
   * over its source's budget is counted, and the count is stored when the source's minute ends.
   */
  async record(spec: EventSpec): Promise<void> {
    const now = this.#now();
    const event = this.#event(capped(spec), now);
    if (spec.outcome === 'refused' && !this.#allow(spec.remote_addr, JSON.stringify(event).length, now.getTime())) return;
    await this.#store(event, now);
  }

  /**
   * As record(), for the event of each proxied Kubernetes request: logged at once, stored with the
   * others of the same moment in one transaction, so the store's write latency does not bound how
   * many requests a second the server proxies. Never throws, never waits.
   */
  queue(spec: EventSpec): void {
    const now = this.#now();
    const event = this.#event(capped(spec), now);
    if (spec.outcome === 'refused' && !this.#allow(spec.remote_addr, JSON.stringify(event).length, now.getTime())) return;
    this.#log(JSON.stringify({ audit: event.spec }));
    if (this.#queued.length >= MAX_QUEUED_EVENTS) {
      this.#droppedQueued++;
      return;
    }
    this.#queued.push(event);
    // Gathered for QUEUE_WAIT_MS: one store transaction carries the requests of that time, not of one loop turn.
    this.#flushing ??= new Promise<void>((resolve) => setTimeout(resolve, QUEUE_WAIT_MS)).then(() => this.#flushQueue());
  }

  /** Events waiting for their batched store write (the server's metrics). */
  get queued(): number {
    return this.#queued.length;
  }

  /** Waits until every queued event is stored (or its failure logged): at shutdown, and in tests. */
  async drain(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  async #flushQueue(): Promise<void> {
    while (this.#queued.length > 0) {
      const batch = this.#queued.splice(0, EVENTS_PER_TXN);
      const at = this.#now().getTime();
      const ops = batch.map((e) => ({
        key: resourceKey(AUDIT_EVENT, e.metadata.name),
        revision: 0,
        value: encodeResource(e),
        ttlMs: Math.max(1, Date.parse(e.metadata.expires!) - at),
      }));
      try {
        if (!(await this.#backend.transact(ops))) throw new Error('an event name was taken');
      } catch (err) {
        this.#log(JSON.stringify({ level: 'error', msg: `${batch.length} audit event(s) not stored: ${clip((err as Error).message)}` }));
      }
    }
    if (this.#droppedQueued > 0) {
      this.#log(
        JSON.stringify({
          level: 'error',
          msg: `${this.#droppedQueued} audit event(s) of Kubernetes requests not stored: more than ${MAX_QUEUED_EVENTS} were waiting for the store`,
        }),
      );
      this.#droppedQueued = 0;
    }
    this.#flushing = undefined;
  }

  /** A failure whose cause the caller is not told, for the server's log, within the caller's budget. */
  failure(remote: string, message: string): void {
    const line = JSON.stringify({ level: 'error', msg: clip(message), remote_addr: clip(remote) });
    if (this.#allow(remote, line.length, this.#now().getTime())) this.#log(line);
  }

  #allow(remote: string | undefined, bytes: number, now: number): boolean {
    let source = sourceOf(remote);
    let window = this.#windows.get(source);
    if (!window || now - window.start >= 60_000) {
      if (window) this.#summarise(source, window, now);
      if (!window && this.#windows.size >= MAX_SOURCES) {
        for (const [stale, old] of this.#windows) {
          if (now - old.start < 60_000) continue;
          this.#summarise(stale, old, now);
          this.#windows.delete(stale);
        }
        // Past MAX_SOURCES live sources, the new ones share one budget.
        if (this.#windows.size >= MAX_SOURCES) source = '*';
      }
      window = this.#windows.get(source);
      if (!window || now - window.start >= 60_000) {
        window = { start: now, count: 0, bytes: 0, dropped: 0 };
        this.#windows.set(source, window);
      }
    }
    if (window.count >= REFUSALS_PER_MINUTE || window.bytes + bytes > REFUSAL_BYTES_PER_MINUTE) {
      window.dropped++;
      return false;
    }
    window.count++;
    window.bytes += bytes;
    return true;
  }

  #summarise(source: string, window: Window, now: number): void {
    if (window.dropped === 0) return;
    const reason = `${window.dropped} more refused or failed calls in one minute were not stored`;
    void this.#store(this.#event({ type: 'audit.suppressed', outcome: 'refused', reason, remote_addr: source }, new Date(now)), new Date(now));
  }

  #event(spec: EventSpec, now: Date): AuditEvent {
    return {
      kind: AUDIT_EVENT,
      version: 'v1',
      metadata: { name: `${now.toISOString()}-${nameSuffix()}`, expires: new Date(now.getTime() + this.#retentionMs).toISOString() },
      spec: { time: now.toISOString(), ...spec },
    };
  }

  async #store(event: AuditEvent, now: Date): Promise<void> {
    this.#log(JSON.stringify({ audit: event.spec }));
    try {
      await upsertResource(this.#backend, event, now.getTime());
    } catch (err) {
      this.#log(JSON.stringify({ level: 'error', msg: `audit event not stored: ${clip((err as Error).message)}`, audit: event.spec }));
    }
  }
}

/** Random bytes for event names, drawn 4 KiB at a time: a randomBytes(8) per request was a system call each (2.5% of the server's CPU per proxied request). */
let entropy = Buffer.alloc(0);
let taken = 0;
const SUFFIX_BYTES = 8;

/**
 * 16 hex digits of fresh randomness, never reused: what keeps two events of the same millisecond
 * apart, in one server or across the several servers of one store, without their knowing of each
 * other. 64 bits, because a clash is not harmless: a batch of request events is one transaction of
 * creates, and a name already taken loses all 100. With 32 bits, three servers storing 1,000
 * events a second each met about once in ten days (k events in one millisecond clash with chance
 * k²/2^33); with 64 bits, 10 events every millisecond for ten years clash with chance under 10^-6.
 */
function nameSuffix(): string {
  if (taken + SUFFIX_BYTES > entropy.length) {
    entropy = randomBytes(4096);
    taken = 0;
  }
  taken += SUFFIX_BYTES;
  return entropy.toString('hex', taken - SUFFIX_BYTES, taken);
}

/** Every text field cut to MAX_AUDIT_FIELD characters and made printable; at most MAX_ROLES roles. */
function capped(spec: EventSpec): EventSpec {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(spec)) {
    if (typeof v === 'string') out[k] = clip(v);
    else if (Array.isArray(v)) out[k] = v.slice(0, MAX_ROLES).map((r) => clip(String(r)));
    else out[k] = v;
  }
  return out as unknown as EventSpec;
}

/** `text` cut to MAX_AUDIT_FIELD characters, saying how long it was. */
export function clip(text: string): string {
  if (text.length <= MAX_AUDIT_FIELD) return printableText(text, MAX_AUDIT_FIELD);
  const note = ` (${text.length} characters)`;
  return `${printableText(text, MAX_AUDIT_FIELD - note.length)}${note}`;
}

/**
 * Whom a budget belongs to: the address without its port; an IPv6 address by its /64, since one
 * host holds a whole /64 and could otherwise take a fresh budget per address.
 */
export function sourceOf(remote: string | undefined): string {
  // [v6]:port as remoteOf writes it; an unbracketed form (events written before) as it was read.
  const bracketed = /^\[([^\]]*)\](?::\d+)?$/.exec(remote ?? '');
  const address = bracketed ? bracketed[1]! : (remote ?? '?').replace(/:\d+$/, '');
  if (!isIPv6(address) || /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address)) return address.replace(/^::ffff:/i, '');
  const [head = '', tail = ''] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = address.includes('::') ? (tail ? tail.split(':') : []) : [];
  const groups = [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, '').toLowerCase())
    .join(':')}::/64`;
}
