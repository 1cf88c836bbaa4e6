import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
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
  readonly #out: WriteStream;
  #pending = '';
  #scheduled = false;

  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.#out = createWriteStream(path, { flags: 'a', mode: 0o600 });
  }

  /** Lines finished in one turn of the event loop go out in one write (one syscall, not one each). */
  write(event: AuditEvent): void {
    this.#pending += `${JSON.stringify(event)}\n`;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  readonly #flush = () => {
    this.#scheduled = false;
    if (!this.#pending) return;
    this.#out.write(this.#pending);
    this.#pending = '';
  };

  close(): Promise<void> {
    this.#flush();
    return new Promise((resolve) => this.#out.end(resolve));
  }
}
