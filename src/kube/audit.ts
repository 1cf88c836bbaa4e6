import { closeSync, openSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { trustedPath } from '../core/trusted-path.ts';
import type { ImpersonationResult } from './access.ts';
import { requestInfo } from './request-info.ts';

export interface AuditEvent {
  time: string;
  user: string;
  cluster: string;
  method: string;
  path: string;
  verb: string;
  api_group: string;
  namespace: string;
  resource: string;
  name: string;
  status: number;
  impersonated_user: string;
  impersonated_groups: string[];
  duration_ms: number;
  error?: string;
}

/** What the forwarder knows of a finished request; the audit line is made from it later. */
export interface FinishedRequest {
  /** Epoch milliseconds. */
  at: number;
  durationMs: number;
  user: string;
  cluster: string;
  method: string;
  path: string;
  status: number;
  identity: ImpersonationResult;
  error: string | undefined;
}

/** One JSON line per proxied request, appended to a private file under the data dir. */
export class AuditLog {
  readonly path: string;
  #fd: number | undefined;
  #pending: FinishedRequest[] = [];
  #scheduled = false;

  constructor(path: string) {
    // Made through the checked way (trusted-path.ts): a data dir not made yet is not made through another user's link.
    this.path = join(trustedPath(dirname(path), { what: 'the directory' }, { create: true }), basename(path));
    this.#fd = openSync(this.path, 'a', 0o600);
  }

  /**
   * Requests finished in one turn of the event loop are described and appended together after
   * it, in one write(2) to the page cache: the response goes out first, and no stream's buffers
   * and callbacks are paid per request.
   */
  record(request: FinishedRequest): void {
    this.#pending.push(request);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  readonly #flush = () => {
    this.#scheduled = false;
    if (this.#pending.length === 0 || this.#fd === undefined) return;
    let text = '';
    for (const request of this.#pending) text += `${JSON.stringify(auditEvent(request))}\n`;
    this.#pending = [];
    writeSync(this.#fd, text);
  };

  async close(): Promise<void> {
    this.#flush();
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

function auditEvent(r: FinishedRequest): AuditEvent {
  const info = requestInfo(r.method, r.path);
  const error = r.error ?? (r.identity.ok ? undefined : r.identity.message);
  return {
    time: new Date(r.at).toISOString(),
    user: r.user,
    cluster: r.cluster,
    method: r.method,
    path: r.path,
    verb: info.verb,
    api_group: info.apiGroup,
    namespace: info.namespace,
    resource: info.subresource ? `${info.resource}/${info.subresource}` : info.resource,
    name: info.name,
    status: r.status,
    impersonated_user: r.identity.ok ? r.identity.user : '',
    impersonated_groups: r.identity.ok ? r.identity.groups : [],
    duration_ms: Math.round(r.durationMs * 100) / 100,
    ...(error && { error }),
  };
}
