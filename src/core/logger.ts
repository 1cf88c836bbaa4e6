import type { Writable } from 'node:stream';

/** Human messages on stderr (STYLE.md 6): warnings, notices, debug lines. */
export class Logger {
  debugEnabled: boolean;
  /** With --format json, stderr carries JSON lines too, so a script reading it is never handed plain text. */
  json = false;
  readonly #out: Writable;
  readonly #color: boolean;

  constructor(out: Writable, opts: { debug: boolean; color: boolean }) {
    this.#out = out;
    this.debugEnabled = opts.debug;
    this.#color = opts.color;
  }

  info(message: string): void {
    this.#out.write(this.json ? this.#line('info', message) : `${message}\n`);
  }

  warn(message: string): void {
    this.#out.write(this.json ? this.#line('warning', message) : `${this.#paint('33', 'Warning:')} ${message}\n`);
  }

  error(message: string): void {
    this.#out.write(this.json ? this.#line('error', message) : `${this.#paint('31', 'ERROR:')} ${message}\n`);
  }

  debug(message: string): void {
    if (this.debugEnabled) this.#out.write(this.json ? this.#line('debug', message) : `${this.#paint('2', 'DEBUG')} ${message}\n`);
  }

  #line(level: string, message: string): string {
    return `${JSON.stringify({ time: new Date().toISOString(), level, message })}\n`;
  }

  #paint(code: string, text: string): string {
    return this.#color ? `\u001b[${code}m${text}\u001b[0m` : text;
  }
}
