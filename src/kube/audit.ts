import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

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

/** One JSON line per proxied request, appended to a private file under the data dir. */
export class AuditLog {
  readonly path: string;
  #fd: number | undefined;
  #pending = '';
  #scheduled = false;

  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.#fd = openSync(path, 'a', 0o600);
  }

  /**
   * Lines finished in one turn of the event loop go out in one append: one write(2) to the page
   * cache, without a stream's buffers and callbacks per request.
   */
  write(event: AuditEvent): void {
    this.#pending += `${JSON.stringify(event)}\n`;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  readonly #flush = () => {
    this.#scheduled = false;
    if (!this.#pending || this.#fd === undefined) return;
    const text = this.#pending;
    this.#pending = '';
    writeSync(this.#fd, text);
  };

  async close(): Promise<void> {
    this.#flush();
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}
