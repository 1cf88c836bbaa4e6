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

  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.#out = createWriteStream(path, { flags: 'a', mode: 0o600 });
  }

  write(event: AuditEvent): void {
    this.#out.write(`${JSON.stringify(event)}\n`);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#out.end(resolve));
  }
}
